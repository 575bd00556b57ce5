//go:build amd64 && !purego

#include "textflag.h"

// The packing routines move values only: a panel holds exactly the source
// values, in the order the micro-kernels read them.
//
// Both transpose blocks of 16 columns (16 consecutive floats of each source
// row) in registers. Stage 1 interleaves pairs of rows (VUNPCKLPS/HPS),
// stage 2 pairs of pairs (VSHUFPS), so that register u[4g+c] holds, in its
// 128-bit chunk t, rows 4g..4g+3 of column 4t+c. Stage 3 gathers the
// chunks into output order with 4×4 transposes of 128-bit chunks
// (VSHUFF32X4), CHUNKT below.

// CHUNKT stores, for t = 0..3, the chunks t of x0, x1, x2, x3 (in that
// order) as one ZMM at o_t(DI).
#define CHUNKT(x0, x1, x2, x3, o0, o1, o2, o3) \
	VSHUFF32X4 $0x44, x1, x0, Z24; \
	VSHUFF32X4 $0xEE, x1, x0, Z25; \
	VSHUFF32X4 $0x44, x3, x2, Z26; \
	VSHUFF32X4 $0xEE, x3, x2, Z27; \
	VSHUFF32X4 $0x88, Z26, Z24, Z28; \
	VSHUFF32X4 $0xDD, Z26, Z24, Z29; \
	VSHUFF32X4 $0x88, Z27, Z25, Z30; \
	VSHUFF32X4 $0xDD, Z27, Z25, Z31; \
	VMOVUPS    Z28, o0(DI); \
	VMOVUPS    Z29, o1(DI); \
	VMOVUPS    Z30, o2(DI); \
	VMOVUPS    Z31, o3(DI)

// QUAD turns rows r0..r3 (any registers) into u0..u3: chunk t of u_c is
// column 4t+c of the four rows. ta, tb, tc, td are scratch.
#define QUAD(r0, r1, r2, r3, ta, tb, tc, td, u0, u1, u2, u3) \
	VUNPCKLPS r1, r0, ta; \
	VUNPCKHPS r1, r0, tb; \
	VUNPCKLPS r3, r2, tc; \
	VUNPCKHPS r3, r2, td; \
	VSHUFPS   $0x44, tc, ta, u0; \
	VSHUFPS   $0xEE, tc, ta, u1; \
	VSHUFPS   $0x44, td, tb, u2; \
	VSHUFPS   $0xEE, td, tb, u3

// func packA12(n int, a *float32, lda int, dst *float32)
//
// dst[p*12+i] = a[i*lda+p] for i < 12, p < 16n: twelve rows of a row-major
// A into the 12-row panel kernel512 reads. Each block of 16 columns is
// 192 contiguous floats of dst, twelve full ZMM stores.
TEXT ·packA12(SB), NOSPLIT, $0-32
	MOVQ n+0(FP), CX
	MOVQ a+8(FP), SI
	MOVQ lda+16(FP), BX
	SHLQ $2, BX
	MOVQ dst+24(FP), DI
	LEAQ (BX)(BX*2), AX
	LEAQ (SI)(AX*1), R8
	LEAQ (R8)(AX*1), R9
	LEAQ (R9)(AX*1), R10
	TESTQ CX, CX
	JE    doneA12

loopA12:
	VMOVUPS (SI), Z0
	VMOVUPS (SI)(BX*1), Z1
	VMOVUPS (SI)(BX*2), Z2
	VMOVUPS (R8), Z3
	VMOVUPS (R8)(BX*1), Z4
	VMOVUPS (R8)(BX*2), Z5
	VMOVUPS (R9), Z6
	VMOVUPS (R9)(BX*1), Z7
	VMOVUPS (R9)(BX*2), Z8
	VMOVUPS (R10), Z9
	VMOVUPS (R10)(BX*1), Z10
	VMOVUPS (R10)(BX*2), Z11
	QUAD(Z0, Z1, Z2, Z3, Z12, Z13, Z14, Z15, Z16, Z17, Z18, Z19)
	QUAD(Z4, Z5, Z6, Z7, Z12, Z13, Z14, Z15, Z20, Z21, Z22, Z23)
	QUAD(Z8, Z9, Z10, Z11, Z12, Z13, Z14, Z15, Z0, Z1, Z2, Z3)
	// u0..u3 = Z16..Z19, u4..u7 = Z20..Z23, u8..u11 = Z0..Z3. Column p
	// is the chunks (u[p%4], u[4+p%4], u[8+p%4]) at dst[12p:], so the
	// output runs u0 u4 u8 u1 | u5 u9 u2 u6 | u10 u3 u7 u11 per 4 columns.
	CHUNKT(Z16, Z20, Z0, Z17, 0, 192, 384, 576)
	CHUNKT(Z21, Z1, Z18, Z22, 64, 256, 448, 640)
	CHUNKT(Z2, Z19, Z23, Z3, 128, 320, 512, 704)
	ADDQ $64, SI
	ADDQ $64, R8
	ADDQ $64, R9
	ADDQ $64, R10
	ADDQ $768, DI
	DECQ CX
	JNE  loopA12

doneA12:
	VZEROUPPER
	RET

// func packB32(n int, b *float32, ldb int, dst *float32)
//
// dst[p*32+j] = b[j*ldb+p] for j < 32, p < 16n: 32 rows of a transposed B
// (B(p, j) at b[j*ldb+p]) into the 32-column panel kernel512 reads. Each
// half of 16 rows is a plain 16×16 transpose.
TEXT ·packB32(SB), NOSPLIT, $0-32
	MOVQ n+0(FP), CX
	MOVQ b+8(FP), SI
	MOVQ ldb+16(FP), BX
	SHLQ $2, BX
	MOVQ dst+24(FP), DI
	LEAQ (BX)(BX*2), AX
	MOVQ BX, DX
	SHLQ $4, DX // 16 rows
	MOVQ DI, R14
	TESTQ CX, CX
	JE    doneB32

loopB32:
	MOVQ SI, R11
	MOVQ R14, R12
	MOVQ $2, R13

halfB32:
	LEAQ    (R11)(AX*1), R8
	LEAQ    (R8)(AX*1), R9
	LEAQ    (R9)(AX*1), R10
	VMOVUPS (R11), Z0
	VMOVUPS (R11)(BX*1), Z1
	VMOVUPS (R11)(BX*2), Z2
	VMOVUPS (R8), Z3
	VMOVUPS (R8)(BX*1), Z4
	VMOVUPS (R8)(BX*2), Z5
	VMOVUPS (R9), Z6
	VMOVUPS (R9)(BX*1), Z7
	VMOVUPS (R9)(BX*2), Z8
	VMOVUPS (R10), Z9
	VMOVUPS (R10)(BX*1), Z10
	VMOVUPS (R10)(BX*2), Z11
	LEAQ    (R10)(AX*1), R8
	VMOVUPS (R8), Z12
	VMOVUPS (R8)(BX*1), Z13
	VMOVUPS (R8)(BX*2), Z14
	LEAQ    (R8)(AX*1), R9
	VMOVUPS (R9), Z15
	QUAD(Z0, Z1, Z2, Z3, Z24, Z25, Z26, Z27, Z16, Z17, Z18, Z19)
	QUAD(Z4, Z5, Z6, Z7, Z24, Z25, Z26, Z27, Z20, Z21, Z22, Z23)
	QUAD(Z8, Z9, Z10, Z11, Z24, Z25, Z26, Z27, Z0, Z1, Z2, Z3)
	QUAD(Z12, Z13, Z14, Z15, Z24, Z25, Z26, Z27, Z4, Z5, Z6, Z7)
	// Column p (16 values, rows 0..15 of this half) is the chunks
	// (u[c], u[4+c], u[8+c], u[12+c]) with c = p%4, t = p/4, stored at
	// dst[32p:] (byte offset 128p).
	MOVQ R12, DI
	CHUNKT(Z16, Z20, Z0, Z4, 0, 512, 1024, 1536)
	CHUNKT(Z17, Z21, Z1, Z5, 128, 640, 1152, 1664)
	CHUNKT(Z18, Z22, Z2, Z6, 256, 768, 1280, 1792)
	CHUNKT(Z19, Z23, Z3, Z7, 384, 896, 1408, 1920)
	ADDQ DX, R11
	ADDQ $64, R12
	DECQ R13
	JNE  halfB32

	ADDQ $64, SI
	ADDQ $2048, R14
	DECQ CX
	JNE  loopB32

doneB32:
	VZEROUPPER
	RET
