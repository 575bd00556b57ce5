//go:build amd64 && !purego

#include "textflag.h"

// The vocabulary head's kernels: kernel512e and kernel512he (gemm_amd64.s)
// with two additions. The value added to each accumulator comes from cin
// (row stride ldcin) rather than from C itself, so that the first block of
// a product adds a row of zeros or the bias (ldcin = 0) instead of
// reading C after a separate pass has set it; the additions are the same,
// in the same order (acc + cin), so the bits are. With ldcin < 0, cin is
// a column: row i adds cin[i] to all its columns (a bias per row). And every step prefetches
// one line, at pf, then pf += pfstep: the caller points it at the operand
// the next kernels read from memory (the next panel of W).

// HZERO24 clears the 24 accumulators.
#define HZERO24 \
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

// HSTEP is one step of head512: as K512STEP, plus the prefetch.
#define HSTEP \
	PREFETCHT1 (AX); \
	ADDQ SI, AX; \
	VMOVUPS.Z (DI), K1, Z24; \
	VMOVUPS.Z 64(DI), K2, Z25; \
	VFMADD231PS.BCST (R10), Z24, Z0; \
	VFMADD231PS.BCST (R10), Z25, Z1; \
	VFMADD231PS.BCST (R10)(R12*1), Z24, Z2; \
	VFMADD231PS.BCST (R10)(R12*1), Z25, Z3; \
	VFMADD231PS.BCST (R10)(R12*2), Z24, Z4; \
	VFMADD231PS.BCST (R10)(R12*2), Z25, Z5; \
	VFMADD231PS.BCST (R11), Z24, Z6; \
	VFMADD231PS.BCST (R11), Z25, Z7; \
	VFMADD231PS.BCST (R11)(R12*1), Z24, Z8; \
	VFMADD231PS.BCST (R11)(R12*1), Z25, Z9; \
	VFMADD231PS.BCST (R11)(R12*2), Z24, Z10; \
	VFMADD231PS.BCST (R11)(R12*2), Z25, Z11; \
	VFMADD231PS.BCST (R13), Z24, Z12; \
	VFMADD231PS.BCST (R13), Z25, Z13; \
	VFMADD231PS.BCST (R13)(R12*1), Z24, Z14; \
	VFMADD231PS.BCST (R13)(R12*1), Z25, Z15; \
	VFMADD231PS.BCST (R13)(R12*2), Z24, Z16; \
	VFMADD231PS.BCST (R13)(R12*2), Z25, Z17; \
	VFMADD231PS.BCST (R14), Z24, Z18; \
	VFMADD231PS.BCST (R14), Z25, Z19; \
	VFMADD231PS.BCST (R14)(R12*1), Z24, Z20; \
	VFMADD231PS.BCST (R14)(R12*1), Z25, Z21; \
	VFMADD231PS.BCST (R14)(R12*2), Z24, Z22; \
	VFMADD231PS.BCST (R14)(R12*2), Z25, Z23; \
	ADDQ R9, R10; \
	ADDQ R9, R11; \
	ADDQ R9, R13; \
	ADDQ R9, R14; \
	ADDQ BX, DI

// HROW2 adds row i of cin (AX) to a row pair of accumulators under the
// column masks K1 and K2, stores it to row i of C (DX), moves both to the
// next row; after h rows (SI) it jumps to done.
#define HROW2(za, zb, done) \
	VADDPS  (AX), za, K1, za; \
	VADDPS  64(AX), zb, K2, zb; \
	VMOVUPS za, K1, (DX); \
	VMOVUPS zb, K2, 64(DX); \
	ADDQ    R8, DX; \
	ADDQ    BX, AX; \
	DECQ    SI; \
	JZ      done

// HROW2B is HROW2 when cin is a column (ldcin < 0): row i adds cin[i],
// broadcast, to every column.
#define HROW2B(za, zb, done) \
	VBROADCASTSS (AX), Z26; \
	VADDPS  Z26, za, K1, za; \
	VADDPS  Z26, zb, K2, zb; \
	VMOVUPS za, K1, (DX); \
	VMOVUPS zb, K2, 64(DX); \
	ADDQ    R8, DX; \
	ADDQ    $4, AX; \
	DECQ    SI; \
	JZ      done

// HROW1B is HROW2B for one accumulator per row.
#define HROW1B(za, done) \
	VBROADCASTSS (AX), Z26; \
	VADDPS  Z26, za, K1, za; \
	VMOVUPS za, K1, (DX); \
	ADDQ    R8, DX; \
	ADDQ    $4, AX; \
	DECQ    SI; \
	JZ      done

// HROW1 is HROW2 for head512h's one accumulator per row (mask K1).
#define HROW1(za, done) \
	VADDPS  (AX), za, K1, za; \
	VMOVUPS za, K1, (DX); \
	ADDQ    R8, DX; \
	ADDQ    BX, AX; \
	DECQ    SI; \
	JZ      done

// HPROLOGUE loads the operands common to head512 and head512h.
#define HPROLOGUE \
	MOVQ  kb+0(FP), CX; \
	MOVQ  ap+8(FP), R10; \
	MOVQ  sp+16(FP), R9; \
	SHLQ  $2, R9; \
	MOVQ  si+24(FP), R12; \
	SHLQ  $2, R12; \
	MOVQ  bp+32(FP), DI; \
	MOVQ  sb+40(FP), BX; \
	SHLQ  $2, BX; \
	MOVQ  pf+104(FP), AX; \
	MOVQ  pfstep+112(FP), SI; \
	LEAQ  (R12)(R12*2), DX; \
	LEAQ  (R10)(DX*1), R11; \
	LEAQ  (R11)(DX*1), R13; \
	LEAQ  (R13)(DX*1), R14

// HEPILOGUE loads the operands of the additions and stores, and sets the
// sign flag when cin is a column (ldcin < 0).
#define HEPILOGUE \
	MOVQ c+48(FP), DX; \
	MOVQ ldc+56(FP), R8; \
	SHLQ $2, R8; \
	MOVQ cin+64(FP), AX; \
	MOVQ ldcin+72(FP), BX; \
	SHLQ $2, BX; \
	MOVQ h+80(FP), SI; \
	TESTQ BX, BX

// func head512(kb int, ap *float32, sp, si int, bp *float32, sb int, c *float32, ldc int, cin *float32, ldcin int, h, m0, m1 int, pf *float32, pfstep int)
//
// C[i, j] = cin[i*ldcin + j] + sum over p < kb of A(i, p) * B(p, j) for
// rows i < h (1 ≤ h ≤ 12) and the columns j set in the masks m0 (0–15)
// and m1 (16–31); A is read as by kernel512 (all 12 rows), B only in the
// masked columns (it may be read in place, up to its last column).
// cin may be c (ldcin = ldc): C += A·B.
TEXT ·head512(SB), NOSPLIT, $0-120
	HPROLOGUE
	MOVQ  m0+88(FP), R8
	KMOVW R8, K1
	MOVQ  m1+96(FP), R8
	KMOVW R8, K2

	HZERO24

	TESTQ CX, CX
	JE    store

loop:
	HSTEP
	DECQ CX
	JNE  loop

store:
	HEPILOGUE
	JS column
	HROW2(Z0, Z1, done)
	HROW2(Z2, Z3, done)
	HROW2(Z4, Z5, done)
	HROW2(Z6, Z7, done)
	HROW2(Z8, Z9, done)
	HROW2(Z10, Z11, done)
	HROW2(Z12, Z13, done)
	HROW2(Z14, Z15, done)
	HROW2(Z16, Z17, done)
	HROW2(Z18, Z19, done)
	HROW2(Z20, Z21, done)
	HROW2(Z22, Z23, done)

column:
	HROW2B(Z0, Z1, done)
	HROW2B(Z2, Z3, done)
	HROW2B(Z4, Z5, done)
	HROW2B(Z6, Z7, done)
	HROW2B(Z8, Z9, done)
	HROW2B(Z10, Z11, done)
	HROW2B(Z12, Z13, done)
	HROW2B(Z14, Z15, done)
	HROW2B(Z16, Z17, done)
	HROW2B(Z18, Z19, done)
	HROW2B(Z20, Z21, done)
	HROW2B(Z22, Z23, done)

done:
	VZEROUPPER
	RET

// func head512h(kb int, ap *float32, sp, si int, bp *float32, sb int, c *float32, ldc int, cin *float32, ldcin int, h, m0, m1 int, pf *float32, pfstep int)
//
// head512 for at most 16 columns (mask m0; m1 is ignored): one ZMM
// accumulator per row, one load of B per step.
TEXT ·head512h(SB), NOSPLIT, $0-120
	HPROLOGUE
	MOVQ  m0+88(FP), R8
	KMOVW R8, K1

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
	JE    storeh

looph:
	PREFETCHT1 (AX)
	ADDQ SI, AX
	VMOVUPS.Z (DI), K1, Z24
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
	JNE  looph

storeh:
	HEPILOGUE
	JS columnh
	HROW1(Z0, doneh)
	HROW1(Z1, doneh)
	HROW1(Z2, doneh)
	HROW1(Z3, doneh)
	HROW1(Z4, doneh)
	HROW1(Z5, doneh)
	HROW1(Z6, doneh)
	HROW1(Z7, doneh)
	HROW1(Z8, doneh)
	HROW1(Z9, doneh)
	HROW1(Z10, doneh)
	HROW1(Z11, doneh)

columnh:
	HROW1B(Z0, doneh)
	HROW1B(Z1, doneh)
	HROW1B(Z2, doneh)
	HROW1B(Z3, doneh)
	HROW1B(Z4, doneh)
	HROW1B(Z5, doneh)
	HROW1B(Z6, doneh)
	HROW1B(Z7, doneh)
	HROW1B(Z8, doneh)
	HROW1B(Z9, doneh)
	HROW1B(Z10, doneh)
	HROW1B(Z11, doneh)

doneh:
	VZEROUPPER
	RET

// func head512r8(kb int, ap *float32, sp, si int, bp *float32, sb int, c *float32, ldc int, cin *float32, ldcin int, h, m0, m1 int, pf *float32, pfstep int)
//
// head512 for at most 8 rows (1 ≤ h ≤ 8): 16 accumulators, A's rows 0–7
// only, two thirds of head512's work (inference's last 8 of 80 rows).
TEXT ·head512r8(SB), NOSPLIT, $0-120
	HPROLOGUE
	MOVQ  m0+88(FP), R8
	KMOVW R8, K1
	MOVQ  m1+96(FP), R8
	KMOVW R8, K2

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
	VPXORD Z12, Z12, Z12
	VPXORD Z13, Z13, Z13
	VPXORD Z14, Z14, Z14
	VPXORD Z15, Z15, Z15

	TESTQ CX, CX
	JE    store8

loop8:
	PREFETCHT1 (AX)
	ADDQ SI, AX
	VMOVUPS.Z (DI), K1, Z24
	VMOVUPS.Z 64(DI), K2, Z25
	VFMADD231PS.BCST (R10), Z24, Z0
	VFMADD231PS.BCST (R10), Z25, Z1
	VFMADD231PS.BCST (R10)(R12*1), Z24, Z2
	VFMADD231PS.BCST (R10)(R12*1), Z25, Z3
	VFMADD231PS.BCST (R10)(R12*2), Z24, Z4
	VFMADD231PS.BCST (R10)(R12*2), Z25, Z5
	VFMADD231PS.BCST (R11), Z24, Z6
	VFMADD231PS.BCST (R11), Z25, Z7
	VFMADD231PS.BCST (R11)(R12*1), Z24, Z8
	VFMADD231PS.BCST (R11)(R12*1), Z25, Z9
	VFMADD231PS.BCST (R11)(R12*2), Z24, Z10
	VFMADD231PS.BCST (R11)(R12*2), Z25, Z11
	VFMADD231PS.BCST (R13), Z24, Z12
	VFMADD231PS.BCST (R13), Z25, Z13
	VFMADD231PS.BCST (R13)(R12*1), Z24, Z14
	VFMADD231PS.BCST (R13)(R12*1), Z25, Z15
	ADDQ R9, R10
	ADDQ R9, R11
	ADDQ R9, R13
	ADDQ BX, DI
	DECQ CX
	JNE  loop8

store8:
	HEPILOGUE
	JS column8
	HROW2(Z0, Z1, done8)
	HROW2(Z2, Z3, done8)
	HROW2(Z4, Z5, done8)
	HROW2(Z6, Z7, done8)
	HROW2(Z8, Z9, done8)
	HROW2(Z10, Z11, done8)
	HROW2(Z12, Z13, done8)
	HROW2(Z14, Z15, done8)

column8:
	HROW2B(Z0, Z1, done8)
	HROW2B(Z2, Z3, done8)
	HROW2B(Z4, Z5, done8)
	HROW2B(Z6, Z7, done8)
	HROW2B(Z8, Z9, done8)
	HROW2B(Z10, Z11, done8)
	HROW2B(Z12, Z13, done8)
	HROW2B(Z14, Z15, done8)

done8:
	VZEROUPPER
	RET
