//go:build amd64 && !purego

#include "textflag.h"

// The tile kernels of Small (small.go): kernel512e's 12×32 product
// (gemm_amd64.s; the same steps, so the same bits) and a 4×32 one for the
// last rows, each storing rows 0..h-1 under the column masks K1 (columns
// 0–15) and K2 (16–31), either added to C or, with set, over it (C is then
// neither cleared beforehand nor read).

// SSTEP12 is one step p of the 12-row kernel (kernel512's K512STEP).
#define SSTEP12 \
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

// SSTEP4 is one step p of the 4-row kernel.
#define SSTEP4 \
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
	ADDQ R9, R10; \
	ADDQ R9, R11; \
	ADDQ BX, DI

// SARGS loads the common arguments: steps CX, A at R10 (steps R9, rows
// R12 apart, bytes), B at DI (steps BX apart), C at DX (rows R8 apart),
// rows to store SI, masks K1 and K2, set AL; R11 is row 3 of A.
#define SARGS \
	MOVQ  kb+0(FP), CX; \
	MOVQ  ap+8(FP), R10; \
	MOVQ  sp+16(FP), R9; \
	SHLQ  $2, R9; \
	MOVQ  si+24(FP), R12; \
	SHLQ  $2, R12; \
	MOVQ  bp+32(FP), DI; \
	MOVQ  sb+40(FP), BX; \
	SHLQ  $2, BX; \
	MOVQ  c+48(FP), DX; \
	MOVQ  ldc+56(FP), R8; \
	SHLQ  $2, R8; \
	MOVQ  h+64(FP), SI; \
	MOVQ  m0+72(FP), AX; \
	KMOVW AX, K1; \
	MOVQ  m1+80(FP), AX; \
	KMOVW AX, K2; \
	LEAQ  (R12)(R12*2), AX; \
	LEAQ  (R10)(AX*1), R11; \
	MOVB  set+88(FP), AX

// AROW adds a row pair of accumulators into C under the masks; SROW
// stores it over C. Both move to the next row and leave after h rows.
#define AROW(za, zb, done) \
	VADDPS  (DX), za, K1, za; \
	VADDPS  64(DX), zb, K2, zb; \
	VMOVUPS za, K1, (DX); \
	VMOVUPS zb, K2, 64(DX); \
	ADDQ    R8, DX; \
	DECQ    SI; \
	JZ      done

#define SROW(za, zb, done) \
	VMOVUPS za, K1, (DX); \
	VMOVUPS zb, K2, 64(DX); \
	ADDQ    R8, DX; \
	DECQ    SI; \
	JZ      done

#define ZERO8 \
	VPXORD Z0, Z0, Z0; \
	VPXORD Z1, Z1, Z1; \
	VPXORD Z2, Z2, Z2; \
	VPXORD Z3, Z3, Z3; \
	VPXORD Z4, Z4, Z4; \
	VPXORD Z5, Z5, Z5; \
	VPXORD Z6, Z6, Z6; \
	VPXORD Z7, Z7, Z7

// func small12(kb int, ap *float32, sp, si int, bp *float32, sb int, c *float32, ldc int, h, m0, m1 int, set bool)
TEXT ·small12(SB), NOSPLIT, $0-89
	SARGS
	LEAQ (R11)(R12*2), R13
	ADDQ R12, R13          // row 6
	LEAQ (R13)(R12*2), R14
	ADDQ R12, R14          // row 9
	ZERO8
	VPXORD Z8, Z8, Z8
	VPXORD Z9, Z9, Z9
	VPXORD Z10, Z10, Z10
	VPXORD Z11, Z11, Z11
	VPXORD Z12, Z12, Z12
	VPXORD Z13, Z13, Z13
	VPXORD Z14, Z14, Z14
	VPXORD Z15, Z15, Z15
	VPXORD Z16, Z16, Z16
	VPXORD Z17, Z17, Z17
	VPXORD Z18, Z18, Z18
	VPXORD Z19, Z19, Z19
	VPXORD Z20, Z20, Z20
	VPXORD Z21, Z21, Z21
	VPXORD Z22, Z22, Z22
	VPXORD Z23, Z23, Z23
	TESTQ CX, CX
	JE    store12

loop12:
	SSTEP12
	DECQ CX
	JNE  loop12

store12:
	TESTB AL, AL
	JNZ   set12
	AROW(Z0, Z1, done12)
	AROW(Z2, Z3, done12)
	AROW(Z4, Z5, done12)
	AROW(Z6, Z7, done12)
	AROW(Z8, Z9, done12)
	AROW(Z10, Z11, done12)
	AROW(Z12, Z13, done12)
	AROW(Z14, Z15, done12)
	AROW(Z16, Z17, done12)
	AROW(Z18, Z19, done12)
	AROW(Z20, Z21, done12)
	AROW(Z22, Z23, done12)
	JMP   done12

set12:
	SROW(Z0, Z1, done12)
	SROW(Z2, Z3, done12)
	SROW(Z4, Z5, done12)
	SROW(Z6, Z7, done12)
	SROW(Z8, Z9, done12)
	SROW(Z10, Z11, done12)
	SROW(Z12, Z13, done12)
	SROW(Z14, Z15, done12)
	SROW(Z16, Z17, done12)
	SROW(Z18, Z19, done12)
	SROW(Z20, Z21, done12)
	SROW(Z22, Z23, done12)

done12:
	VZEROUPPER
	RET

// func small4(kb int, ap *float32, sp, si int, bp *float32, sb int, c *float32, ldc int, h, m0, m1 int, set bool)
TEXT ·small4(SB), NOSPLIT, $0-89
	SARGS
	ZERO8
	TESTQ CX, CX
	JE    store4

loop4:
	SSTEP4
	DECQ CX
	JNE  loop4

store4:
	TESTB AL, AL
	JNZ   set4
	AROW(Z0, Z1, done4)
	AROW(Z2, Z3, done4)
	AROW(Z4, Z5, done4)
	AROW(Z6, Z7, done4)
	JMP   done4

set4:
	SROW(Z0, Z1, done4)
	SROW(Z2, Z3, done4)
	SROW(Z4, Z5, done4)
	SROW(Z6, Z7, done4)

done4:
	VZEROUPPER
	RET
