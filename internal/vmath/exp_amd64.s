//go:build amd64 && !purego

#include "textflag.h"

DATA expc<>+0(SB)/4, $0x3fb8aa3b  // log2(e)
DATA expc<>+4(SB)/4, $0x3f318000  // ln2 high part 0.693359375
DATA expc<>+8(SB)/4, $0xb95e8083  // ln2 low part -2.12194440e-4
DATA expc<>+12(SB)/4, $0x39506967 // 1.9875691500e-4
DATA expc<>+16(SB)/4, $0x3ab743ce // 1.3981999507e-3
DATA expc<>+20(SB)/4, $0x3c088908 // 8.3334519073e-3
DATA expc<>+24(SB)/4, $0x3d2aa9c1 // 4.1665795894e-2
DATA expc<>+28(SB)/4, $0x3e2aaaaa // 1.6666665459e-1
DATA expc<>+32(SB)/4, $0x3f000000 // 5.0000001201e-1
DATA expc<>+36(SB)/4, $0x3f800000 // 1
DATA expc<>+40(SB)/4, $0x42b17218 // 88.72284: above, +Inf
DATA expc<>+44(SB)/4, $0xc2d00000 // -104: below, 0
GLOBL expc<>(SB), RODATA|NOPTR, $48

// func exp512(dst, src *float32, n int)
//
// 16 lanes per step: clamp x to [-104, 88.72284] (NaN passes through),
// n = round(x·log2 e), r = x − n·ln2 (two parts), p(r) of degree 6 by
// Horner, then y·2^n with VSCALEFPS (exact, subnormals included).
TEXT ·exp512(SB), NOSPLIT, $0-24
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX
	VBROADCASTSS expc<>+0(SB), Z16
	VBROADCASTSS expc<>+4(SB), Z17
	VBROADCASTSS expc<>+8(SB), Z18
	VBROADCASTSS expc<>+12(SB), Z19
	VBROADCASTSS expc<>+16(SB), Z20
	VBROADCASTSS expc<>+20(SB), Z21
	VBROADCASTSS expc<>+24(SB), Z22
	VBROADCASTSS expc<>+28(SB), Z23
	VBROADCASTSS expc<>+32(SB), Z24
	VBROADCASTSS expc<>+36(SB), Z25
	VBROADCASTSS expc<>+40(SB), Z26
	VBROADCASTSS expc<>+44(SB), Z27
	SHRQ $4, CX
	JZ   done

loop:
	VMOVUPS      (SI), Z0
	VMINPS       Z0, Z26, Z0      // min(88.7, x); NaN stays
	VMAXPS       Z0, Z27, Z0      // max(-104, x)
	VMULPS       Z16, Z0, Z1
	VRNDSCALEPS  $0, Z1, Z1       // n = round to nearest even
	VFNMADD231PS Z17, Z1, Z0      // r = x - n·ln2hi
	VFNMADD231PS Z18, Z1, Z0      // r -= n·ln2lo (ln2lo < 0: adds)
	VMOVAPS      Z19, Z2
	VFMADD213PS  Z20, Z0, Z2      // p = p·r + c
	VFMADD213PS  Z21, Z0, Z2
	VFMADD213PS  Z22, Z0, Z2
	VFMADD213PS  Z23, Z0, Z2
	VFMADD213PS  Z24, Z0, Z2
	VMULPS       Z0, Z0, Z3       // r²
	VFMADD213PS  Z0, Z3, Z2       // p·r² + r
	VADDPS       Z25, Z2, Z2      // + 1
	VSCALEFPS    Z1, Z2, Z2       // · 2^n
	VMOVUPS      Z2, (DI)
	ADDQ         $64, SI
	ADDQ         $64, DI
	DECQ         CX
	JNZ          loop

done:
	VZEROUPPER
	RET
