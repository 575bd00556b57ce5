//go:build amd64 && !purego

#include "textflag.h"

// func kernel256(kb int, ap *float32, sp, si int, bp *float32, sb int, c *float32, ldc int)
//
// C[0:6, 0:16] += sum over p < kb of A(i, p) * B(p, j), addressed as in
// kernel512: twelve YMM accumulators (6 rows × 2 halves of 16 columns),
// one broadcast of A and two loads of B per row step, fused multiply-adds.
TEXT ·kernel256(SB), NOSPLIT, $0-64
	MOVQ kb+0(FP), CX
	MOVQ ap+8(FP), R10
	MOVQ sp+16(FP), R9
	SHLQ $2, R9
	MOVQ si+24(FP), R12
	SHLQ $2, R12
	MOVQ bp+32(FP), DI
	MOVQ sb+40(FP), BX
	SHLQ $2, BX
	MOVQ c+48(FP), DX
	MOVQ ldc+56(FP), R8
	SHLQ $2, R8
	LEAQ (R12)(R12*2), AX
	LEAQ (R10)(AX*1), R11

	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	VXORPS Y4, Y4, Y4
	VXORPS Y5, Y5, Y5
	VXORPS Y6, Y6, Y6
	VXORPS Y7, Y7, Y7
	VXORPS Y8, Y8, Y8
	VXORPS Y9, Y9, Y9
	VXORPS Y10, Y10, Y10
	VXORPS Y11, Y11, Y11

	TESTQ CX, CX
	JE    store256

loop256:
	VMOVUPS (DI), Y12
	VMOVUPS 32(DI), Y13
	VBROADCASTSS (R10), Y14
	VFMADD231PS  Y12, Y14, Y0
	VFMADD231PS  Y13, Y14, Y1
	VBROADCASTSS (R10)(R12*1), Y15
	VFMADD231PS  Y12, Y15, Y2
	VFMADD231PS  Y13, Y15, Y3
	VBROADCASTSS (R10)(R12*2), Y14
	VFMADD231PS  Y12, Y14, Y4
	VFMADD231PS  Y13, Y14, Y5
	VBROADCASTSS (R11), Y15
	VFMADD231PS  Y12, Y15, Y6
	VFMADD231PS  Y13, Y15, Y7
	VBROADCASTSS (R11)(R12*1), Y14
	VFMADD231PS  Y12, Y14, Y8
	VFMADD231PS  Y13, Y14, Y9
	VBROADCASTSS (R11)(R12*2), Y15
	VFMADD231PS  Y12, Y15, Y10
	VFMADD231PS  Y13, Y15, Y11
	ADDQ R9, R10
	ADDQ R9, R11
	ADDQ BX, DI
	DECQ CX
	JNE  loop256

store256:
	VADDPS  (DX), Y0, Y0
	VADDPS  32(DX), Y1, Y1
	VMOVUPS Y0, (DX)
	VMOVUPS Y1, 32(DX)
	ADDQ    R8, DX
	VADDPS  (DX), Y2, Y2
	VADDPS  32(DX), Y3, Y3
	VMOVUPS Y2, (DX)
	VMOVUPS Y3, 32(DX)
	ADDQ    R8, DX
	VADDPS  (DX), Y4, Y4
	VADDPS  32(DX), Y5, Y5
	VMOVUPS Y4, (DX)
	VMOVUPS Y5, 32(DX)
	ADDQ    R8, DX
	VADDPS  (DX), Y6, Y6
	VADDPS  32(DX), Y7, Y7
	VMOVUPS Y6, (DX)
	VMOVUPS Y7, 32(DX)
	ADDQ    R8, DX
	VADDPS  (DX), Y8, Y8
	VADDPS  32(DX), Y9, Y9
	VMOVUPS Y8, (DX)
	VMOVUPS Y9, 32(DX)
	ADDQ    R8, DX
	VADDPS  (DX), Y10, Y10
	VADDPS  32(DX), Y11, Y11
	VMOVUPS Y10, (DX)
	VMOVUPS Y11, 32(DX)
	VZEROUPPER
	RET

// K512ZERO clears the 24 accumulators of kernel512 and kernel512e.
#define K512ZERO \
	VPXORD Z0, Z0, Z0; \
	VPXORD Z1, Z1, Z1; \
	VPXORD Z2, Z2, Z2; \
	VPXORD Z3, Z3, Z3; \
	VPXORD Z4, Z4, Z4; \
	VPXORD Z5, Z5, Z5; \
	VPXORD Z6, Z6, Z6; \
	VPXORD Z7, Z7, Z7; \
	VPXORD Z8, Z8, Z8; \
	VPXORD Z9, Z9, Z9; \
	VPXORD Z10, Z10, Z10; \
	VPXORD Z11, Z11, Z11; \
	VPXORD Z12, Z12, Z12; \
	VPXORD Z13, Z13, Z13; \
	VPXORD Z14, Z14, Z14; \
	VPXORD Z15, Z15, Z15; \
	VPXORD Z16, Z16, Z16; \
	VPXORD Z17, Z17, Z17; \
	VPXORD Z18, Z18, Z18; \
	VPXORD Z19, Z19, Z19; \
	VPXORD Z20, Z20, Z20; \
	VPXORD Z21, Z21, Z21; \
	VPXORD Z22, Z22, Z22; \
	VPXORD Z23, Z23, Z23

// K512STEP is one step p of kernel512 and kernel512e: two loads of B,
// each A value broadcast once into a register (six in rotation) and used
// by the two fused multiply-adds of its row, pointers advanced. (Broadcasting
// from memory inside each FMA, A read twice per step, measured 6-10% more
// CPU per product on the step's shapes, though the same alone in L1.)
#define K512STEP \
	VMOVUPS (DI), Z24; \
	VMOVUPS 64(DI), Z25; \
	VBROADCASTSS (R10), Z26; \
	VFMADD231PS  Z24, Z26, Z0; \
	VFMADD231PS  Z25, Z26, Z1; \
	VBROADCASTSS (R10)(R12*1), Z27; \
	VFMADD231PS  Z24, Z27, Z2; \
	VFMADD231PS  Z25, Z27, Z3; \
	VBROADCASTSS (R10)(R12*2), Z28; \
	VFMADD231PS  Z24, Z28, Z4; \
	VFMADD231PS  Z25, Z28, Z5; \
	VBROADCASTSS (R11), Z29; \
	VFMADD231PS  Z24, Z29, Z6; \
	VFMADD231PS  Z25, Z29, Z7; \
	VBROADCASTSS (R11)(R12*1), Z30; \
	VFMADD231PS  Z24, Z30, Z8; \
	VFMADD231PS  Z25, Z30, Z9; \
	VBROADCASTSS (R11)(R12*2), Z31; \
	VFMADD231PS  Z24, Z31, Z10; \
	VFMADD231PS  Z25, Z31, Z11; \
	VBROADCASTSS (R13), Z26; \
	VFMADD231PS  Z24, Z26, Z12; \
	VFMADD231PS  Z25, Z26, Z13; \
	VBROADCASTSS (R13)(R12*1), Z27; \
	VFMADD231PS  Z24, Z27, Z14; \
	VFMADD231PS  Z25, Z27, Z15; \
	VBROADCASTSS (R13)(R12*2), Z28; \
	VFMADD231PS  Z24, Z28, Z16; \
	VFMADD231PS  Z25, Z28, Z17; \
	VBROADCASTSS (R14), Z29; \
	VFMADD231PS  Z24, Z29, Z18; \
	VFMADD231PS  Z25, Z29, Z19; \
	VBROADCASTSS (R14)(R12*1), Z30; \
	VFMADD231PS  Z24, Z30, Z20; \
	VFMADD231PS  Z25, Z30, Z21; \
	VBROADCASTSS (R14)(R12*2), Z31; \
	VFMADD231PS  Z24, Z31, Z22; \
	VFMADD231PS  Z25, Z31, Z23; \
	ADDQ R9, R10; \
	ADDQ R9, R11; \
	ADDQ R9, R13; \
	ADDQ R9, R14; \
	ADDQ BX, DI

// func kernel512(kb int, ap *float32, sp, si int, bp *float32, sb int, c *float32, ldc int)
//
// C[0:12, 0:32] += sum over p < kb of A(i, p) * B(p, j), where A(i, p) is
// at ap[p*sp + i*si] (packed: sp = 12, si = 1; a row-major A read in place:
// sp = 1, si = lda) and B(p, 0:32) at bp[p*sb:] (packed: sb = 32; a
// row-major B read in place: sb = ldb). 24 ZMM accumulators (12 rows × 2
// halves of 32 columns), two loads of B per step, each A value broadcast
// into a register (K512STEP). Rows 0–11 are addressed from four bases
// (rows 3q, 3q+1, 3q+2 as base, base+si, base+2si).
TEXT ·kernel512(SB), NOSPLIT, $0-64
	MOVQ kb+0(FP), CX
	MOVQ ap+8(FP), R10
	MOVQ sp+16(FP), R9
	SHLQ $2, R9
	MOVQ si+24(FP), R12
	SHLQ $2, R12
	MOVQ bp+32(FP), DI
	MOVQ sb+40(FP), BX
	SHLQ $2, BX
	MOVQ c+48(FP), DX
	MOVQ ldc+56(FP), R8
	SHLQ $2, R8
	LEAQ (R12)(R12*2), AX // 3·si bytes
	LEAQ (R10)(AX*1), R11
	LEAQ (R11)(AX*1), R13
	LEAQ (R13)(AX*1), R14

	// Prefetch the C tile (12 rows of two lines): it is read only after
	// the kb steps, and in a large product it is far by then (2048³:
	// 11-12% less CPU; the step's products, whose C is in L2, the same).
	MOVQ DX, SI
	PREFETCHT0 (SI)
	PREFETCHT0 64(SI)
	ADDQ R8, SI
	PREFETCHT0 (SI)
	PREFETCHT0 64(SI)
	ADDQ R8, SI
	PREFETCHT0 (SI)
	PREFETCHT0 64(SI)
	ADDQ R8, SI
	PREFETCHT0 (SI)
	PREFETCHT0 64(SI)
	ADDQ R8, SI
	PREFETCHT0 (SI)
	PREFETCHT0 64(SI)
	ADDQ R8, SI
	PREFETCHT0 (SI)
	PREFETCHT0 64(SI)
	ADDQ R8, SI
	PREFETCHT0 (SI)
	PREFETCHT0 64(SI)
	ADDQ R8, SI
	PREFETCHT0 (SI)
	PREFETCHT0 64(SI)
	ADDQ R8, SI
	PREFETCHT0 (SI)
	PREFETCHT0 64(SI)
	ADDQ R8, SI
	PREFETCHT0 (SI)
	PREFETCHT0 64(SI)
	ADDQ R8, SI
	PREFETCHT0 (SI)
	PREFETCHT0 64(SI)
	ADDQ R8, SI
	PREFETCHT0 (SI)
	PREFETCHT0 64(SI)

	K512ZERO

	TESTQ CX, CX
	JE    store512

loop512:
	K512STEP
	DECQ CX
	JNE  loop512

store512:
	VADDPS  (DX), Z0, Z0
	VADDPS  64(DX), Z1, Z1
	VMOVUPS Z0, (DX)
	VMOVUPS Z1, 64(DX)
	ADDQ    R8, DX
	VADDPS  (DX), Z2, Z2
	VADDPS  64(DX), Z3, Z3
	VMOVUPS Z2, (DX)
	VMOVUPS Z3, 64(DX)
	ADDQ    R8, DX
	VADDPS  (DX), Z4, Z4
	VADDPS  64(DX), Z5, Z5
	VMOVUPS Z4, (DX)
	VMOVUPS Z5, 64(DX)
	ADDQ    R8, DX
	VADDPS  (DX), Z6, Z6
	VADDPS  64(DX), Z7, Z7
	VMOVUPS Z6, (DX)
	VMOVUPS Z7, 64(DX)
	ADDQ    R8, DX
	VADDPS  (DX), Z8, Z8
	VADDPS  64(DX), Z9, Z9
	VMOVUPS Z8, (DX)
	VMOVUPS Z9, 64(DX)
	ADDQ    R8, DX
	VADDPS  (DX), Z10, Z10
	VADDPS  64(DX), Z11, Z11
	VMOVUPS Z10, (DX)
	VMOVUPS Z11, 64(DX)
	ADDQ    R8, DX
	VADDPS  (DX), Z12, Z12
	VADDPS  64(DX), Z13, Z13
	VMOVUPS Z12, (DX)
	VMOVUPS Z13, 64(DX)
	ADDQ    R8, DX
	VADDPS  (DX), Z14, Z14
	VADDPS  64(DX), Z15, Z15
	VMOVUPS Z14, (DX)
	VMOVUPS Z15, 64(DX)
	ADDQ    R8, DX
	VADDPS  (DX), Z16, Z16
	VADDPS  64(DX), Z17, Z17
	VMOVUPS Z16, (DX)
	VMOVUPS Z17, 64(DX)
	ADDQ    R8, DX
	VADDPS  (DX), Z18, Z18
	VADDPS  64(DX), Z19, Z19
	VMOVUPS Z18, (DX)
	VMOVUPS Z19, 64(DX)
	ADDQ    R8, DX
	VADDPS  (DX), Z20, Z20
	VADDPS  64(DX), Z21, Z21
	VMOVUPS Z20, (DX)
	VMOVUPS Z21, 64(DX)
	ADDQ    R8, DX
	VADDPS  (DX), Z22, Z22
	VADDPS  64(DX), Z23, Z23
	VMOVUPS Z22, (DX)
	VMOVUPS Z23, 64(DX)
	VZEROUPPER
	RET


// MROW adds a row pair of accumulators into C under the column masks K1
// (columns 0–15) and K2 (16–31), then moves to the next row; after h rows
// it jumps to done. Masked-off columns of C are neither read nor written.
#define MROW(za, zb, done) \
	VADDPS  (DX), za, K1, za; \
	VADDPS  64(DX), zb, K2, zb; \
	VMOVUPS za, K1, (DX); \
	VMOVUPS zb, K2, 64(DX); \
	ADDQ    R8, DX; \
	DECQ    SI; \
	JZ      done

// func kernel512e(kb int, ap *float32, sp, si int, bp *float32, sb int, c *float32, ldc int, h, m0, m1 int)
//
// kernel512 for an edge tile: only rows 0..h-1 (1 ≤ h ≤ 12) and the
// columns set in the masks m0 (columns 0–15) and m1 (16–31) of C are read
// and written; A and B are read as by kernel512 (padded panels).
TEXT ·kernel512e(SB), NOSPLIT, $0-88
	MOVQ kb+0(FP), CX
	MOVQ ap+8(FP), R10
	MOVQ sp+16(FP), R9
	SHLQ $2, R9
	MOVQ si+24(FP), R12
	SHLQ $2, R12
	MOVQ bp+32(FP), DI
	MOVQ sb+40(FP), BX
	SHLQ $2, BX
	MOVQ c+48(FP), DX
	MOVQ ldc+56(FP), R8
	SHLQ $2, R8
	MOVQ h+64(FP), SI
	MOVQ m0+72(FP), AX
	KMOVW AX, K1
	MOVQ m1+80(FP), AX
	KMOVW AX, K2
	LEAQ (R12)(R12*2), AX
	LEAQ (R10)(AX*1), R11
	LEAQ (R11)(AX*1), R13
	LEAQ (R13)(AX*1), R14

	K512ZERO

	TESTQ CX, CX
	JE    store512e

loop512e:
	K512STEP
	DECQ CX
	JNE  loop512e

store512e:
	MROW(Z0, Z1, done512e)
	MROW(Z2, Z3, done512e)
	MROW(Z4, Z5, done512e)
	MROW(Z6, Z7, done512e)
	MROW(Z8, Z9, done512e)
	MROW(Z10, Z11, done512e)
	MROW(Z12, Z13, done512e)
	MROW(Z14, Z15, done512e)
	MROW(Z16, Z17, done512e)
	MROW(Z18, Z19, done512e)
	MROW(Z20, Z21, done512e)
	MROW(Z22, Z23, done512e)

done512e:
	VZEROUPPER
	RET

// HROW is MROW for kernel512he's one accumulator per row (mask K1).
#define HROW(za, done) \
	VADDPS  (DX), za, K1, za; \
	VMOVUPS za, K1, (DX); \
	ADDQ    R8, DX; \
	DECQ    SI; \
	JZ      done

// func kernel512he(kb int, ap *float32, sp, si int, bp *float32, sb int, c *float32, ldc int, h, m0 int)
//
// kernel512e for an edge tile of at most 16 columns (mask m0): one ZMM
// accumulator per row, one load of B per step, half kernel512e's work.
TEXT ·kernel512he(SB), NOSPLIT, $0-80
	MOVQ kb+0(FP), CX
	MOVQ ap+8(FP), R10
	MOVQ sp+16(FP), R9
	SHLQ $2, R9
	MOVQ si+24(FP), R12
	SHLQ $2, R12
	MOVQ bp+32(FP), DI
	MOVQ sb+40(FP), BX
	SHLQ $2, BX
	MOVQ c+48(FP), DX
	MOVQ ldc+56(FP), R8
	SHLQ $2, R8
	MOVQ h+64(FP), SI
	MOVQ m0+72(FP), AX
	KMOVW AX, K1
	LEAQ (R12)(R12*2), AX
	LEAQ (R10)(AX*1), R11
	LEAQ (R11)(AX*1), R13
	LEAQ (R13)(AX*1), R14

	VPXORD Z0, Z0, Z0
	VPXORD Z1, Z1, Z1
	VPXORD Z2, Z2, Z2
	VPXORD Z3, Z3, Z3
	VPXORD Z4, Z4, Z4
	VPXORD Z5, Z5, Z5
	VPXORD Z6, Z6, Z6
	VPXORD Z7, Z7, Z7
	VPXORD Z8, Z8, Z8
	VPXORD Z9, Z9, Z9
	VPXORD Z10, Z10, Z10
	VPXORD Z11, Z11, Z11

	TESTQ CX, CX
	JE    store512he

loop512he:
	VMOVUPS (DI), Z24
	VFMADD231PS.BCST (R10), Z24, Z0
	VFMADD231PS.BCST (R10)(R12*1), Z24, Z1
	VFMADD231PS.BCST (R10)(R12*2), Z24, Z2
	VFMADD231PS.BCST (R11), Z24, Z3
	VFMADD231PS.BCST (R11)(R12*1), Z24, Z4
	VFMADD231PS.BCST (R11)(R12*2), Z24, Z5
	VFMADD231PS.BCST (R13), Z24, Z6
	VFMADD231PS.BCST (R13)(R12*1), Z24, Z7
	VFMADD231PS.BCST (R13)(R12*2), Z24, Z8
	VFMADD231PS.BCST (R14), Z24, Z9
	VFMADD231PS.BCST (R14)(R12*1), Z24, Z10
	VFMADD231PS.BCST (R14)(R12*2), Z24, Z11
	ADDQ R9, R10
	ADDQ R9, R11
	ADDQ R9, R13
	ADDQ R9, R14
	ADDQ BX, DI
	DECQ CX
	JNE  loop512he

store512he:
	HROW(Z0, done512he)
	HROW(Z1, done512he)
	HROW(Z2, done512he)
	HROW(Z3, done512he)
	HROW(Z4, done512he)
	HROW(Z5, done512he)
	HROW(Z6, done512he)
	HROW(Z7, done512he)
	HROW(Z8, done512he)
	HROW(Z9, done512he)
	HROW(Z10, done512he)
	HROW(Z11, done512he)

done512he:
	VZEROUPPER
	RET
