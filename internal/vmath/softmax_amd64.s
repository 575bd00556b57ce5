//go:build amd64 && !purego

#include "textflag.h"

// The constants of exp512 (exp_amd64.s), in the same registers Z16–Z27.
DATA smc<>+0(SB)/4, $0x3fb8aa3b  // log2(e)
DATA smc<>+4(SB)/4, $0x3f318000  // ln2 high part
DATA smc<>+8(SB)/4, $0xb95e8083  // ln2 low part
DATA smc<>+12(SB)/4, $0x39506967
DATA smc<>+16(SB)/4, $0x3ab743ce
DATA smc<>+20(SB)/4, $0x3c088908
DATA smc<>+24(SB)/4, $0x3d2aa9c1
DATA smc<>+28(SB)/4, $0x3e2aaaaa
DATA smc<>+32(SB)/4, $0x3f000000
DATA smc<>+36(SB)/4, $0x3f800000 // 1
DATA smc<>+40(SB)/4, $0x42b17218 // 88.72284: above, +Inf
DATA smc<>+44(SB)/4, $0xc2d00000 // -104: below, 0
DATA smc<>+48(SB)/4, $0xff800000 // -Inf
GLOBL smc<>(SB), RODATA|NOPTR, $52

#define EXPCONSTS \
	VBROADCASTSS smc<>+0(SB), Z16; \
	VBROADCASTSS smc<>+4(SB), Z17; \
	VBROADCASTSS smc<>+8(SB), Z18; \
	VBROADCASTSS smc<>+12(SB), Z19; \
	VBROADCASTSS smc<>+16(SB), Z20; \
	VBROADCASTSS smc<>+20(SB), Z21; \
	VBROADCASTSS smc<>+24(SB), Z22; \
	VBROADCASTSS smc<>+28(SB), Z23; \
	VBROADCASTSS smc<>+32(SB), Z24; \
	VBROADCASTSS smc<>+36(SB), Z25; \
	VBROADCASTSS smc<>+40(SB), Z26; \
	VBROADCASTSS smc<>+44(SB), Z27

// EXP sets Z2 = e^Z0 by exp512's steps (Z0, Z1, Z3 clobbered).
#define EXP \
	VMINPS       Z0, Z26, Z0; \
	VMAXPS       Z0, Z27, Z0; \
	VMULPS       Z16, Z0, Z1; \
	VRNDSCALEPS  $0, Z1, Z1; \
	VFNMADD231PS Z17, Z1, Z0; \
	VFNMADD231PS Z18, Z1, Z0; \
	VMOVAPS      Z19, Z2; \
	VFMADD213PS  Z20, Z0, Z2; \
	VFMADD213PS  Z21, Z0, Z2; \
	VFMADD213PS  Z22, Z0, Z2; \
	VFMADD213PS  Z23, Z0, Z2; \
	VFMADD213PS  Z24, Z0, Z2; \
	VMULPS       Z0, Z0, Z3; \
	VFMADD213PS  Z0, Z3, Z2; \
	VADDPS       Z25, Z2, Z2; \
	VSCALEFPS    Z1, Z2, Z2

// LANES reduces the 16 lanes of Z0 with op into X0's lane 0, as lanesSum
// (softmax.go): halves, quarters, then pairs (Z1 clobbered).
#define LANES(op) \
	VEXTRACTF64X4 $1, Z0, Y1; \
	op            Y1, Y0, Y0; \
	VEXTRACTF128  $1, Y0, X1; \
	op            X1, X0, X0; \
	VPERMILPS     $0x4e, X0, X1; \
	op            X1, X0, X0; \
	VPERMILPS     $0xb1, X0, X1; \
	op            X1, X0, X0

// TAILMASK sets K1 to the lanes of the last n mod 16 values and R8 to the
// number of full blocks of 16 (n in CX; AX, CX clobbered).
#define TAILMASK \
	MOVQ  CX, R8; \
	SHRQ  $4, R8; \
	ANDQ  $15, CX; \
	MOVL  $1, AX; \
	SHLL  CX, AX; \
	DECL  AX; \
	KMOVW AX, K1

// func softmax512(row *float32, n int, scale float32)
//
// Three passes over the row: the largest scale·x (Z28), e^(scale·x − max)
// stored and summed in 16 lanes (Z29), then the product with 1/sum. The
// last n mod 16 values are read and written under the mask K1.
TEXT ·softmax512(SB), NOSPLIT, $0-20
	MOVQ         row+0(FP), DI
	MOVQ         n+8(FP), CX
	VBROADCASTSS scale+16(FP), Z31
	TAILMASK
	EXPCONSTS
	VBROADCASTSS smc<>+48(SB), Z28

	MOVQ  DI, SI
	MOVQ  R8, DX
	TESTQ DX, DX
	JZ    maxtail

maxloop:
	VMULPS (SI), Z31, Z0
	VMAXPS Z0, Z28, Z28 // Z0 (NaN) when either is NaN
	ADDQ   $64, SI
	DECQ   DX
	JNZ    maxloop

maxtail:
	KORTESTW  K1, K1
	JZ        maxdone
	VMOVUPS.Z (SI), K1, Z0
	VMULPS    Z0, Z31, Z0
	VMAXPS    Z0, Z28, K1, Z28

maxdone:
	VMOVAPS      Z28, Z0
	LANES(VMAXPS)
	VBROADCASTSS X0, Z28

	VPXORD Z29, Z29, Z29
	MOVQ   DI, SI
	MOVQ   R8, DX
	TESTQ  DX, DX
	JZ     exptail

exploop:
	VMULPS  (SI), Z31, Z0
	VSUBPS  Z28, Z0, Z0
	EXP
	VMOVUPS Z2, (SI)
	VADDPS  Z2, Z29, Z29
	ADDQ    $64, SI
	DECQ    DX
	JNZ     exploop

exptail:
	KORTESTW  K1, K1
	JZ        expdone
	VMOVUPS.Z (SI), K1, Z0
	VMULPS    Z0, Z31, Z0
	VSUBPS    Z28, Z0, Z0
	EXP
	VMOVUPS   Z2, K1, (SI)
	VADDPS    Z2, Z29, K1, Z29

expdone:
	VMOVAPS      Z29, Z0
	LANES(VADDPS)
	VMOVSS       smc<>+36(SB), X1
	VDIVSS       X0, X1, X1 // 1/sum
	VBROADCASTSS X1, Z30

	MOVQ  DI, SI
	MOVQ  R8, DX
	TESTQ DX, DX
	JZ    multail

mulloop:
	VMULPS  (SI), Z30, Z0
	VMOVUPS Z0, (SI)
	ADDQ    $64, SI
	DECQ    DX
	JNZ     mulloop

multail:
	KORTESTW  K1, K1
	JZ        muldone
	VMOVUPS.Z (SI), K1, Z0
	VMULPS    Z0, Z30, Z0
	VMOVUPS   Z0, K1, (SI)

muldone:
	VZEROUPPER
	RET

// func softmaxBack512(p, gr *float32, n int, scale float32)
//
// Two passes: dot = Σ p·g in 16 lanes (Z29, products rounded before the
// sum), then g = (scale·p)·(g − dot).
TEXT ·softmaxBack512(SB), NOSPLIT, $0-28
	MOVQ         p+0(FP), SI
	MOVQ         gr+8(FP), DI
	MOVQ         n+16(FP), CX
	VBROADCASTSS scale+24(FP), Z31
	TAILMASK

	VPXORD Z29, Z29, Z29
	MOVQ   SI, R9
	MOVQ   DI, R10
	MOVQ   R8, DX
	TESTQ  DX, DX
	JZ     dottail

dotloop:
	VMOVUPS (R9), Z0
	VMULPS  (R10), Z0, Z0
	VADDPS  Z0, Z29, Z29
	ADDQ    $64, R9
	ADDQ    $64, R10
	DECQ    DX
	JNZ     dotloop

dottail:
	KORTESTW  K1, K1
	JZ        dotdone
	VMOVUPS.Z (R9), K1, Z0
	VMOVUPS.Z (R10), K1, Z1
	VMULPS    Z1, Z0, Z0
	VADDPS    Z0, Z29, K1, Z29

dotdone:
	VMOVAPS      Z29, Z0
	LANES(VADDPS)
	VBROADCASTSS X0, Z28

	MOVQ  SI, R9
	MOVQ  DI, R10
	MOVQ  R8, DX
	TESTQ DX, DX
	JZ    gtail

gloop:
	VMULPS  (R9), Z31, Z0
	VMOVUPS (R10), Z1
	VSUBPS  Z28, Z1, Z1
	VMULPS  Z1, Z0, Z0
	VMOVUPS Z0, (R10)
	ADDQ    $64, R9
	ADDQ    $64, R10
	DECQ    DX
	JNZ     gloop

gtail:
	KORTESTW  K1, K1
	JZ        gdone
	VMOVUPS.Z (R9), K1, Z0
	VMULPS    Z0, Z31, Z0
	VMOVUPS.Z (R10), K1, Z1
	VSUBPS    Z28, Z1, Z1
	VMULPS    Z1, Z0, Z0
	VMOVUPS   Z0, K1, (R10)

gdone:
	VZEROUPPER
	RET
