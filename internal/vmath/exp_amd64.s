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

DATA geluc<>+0(SB)/4, $0x3fb8aa3b // log2e 1.4426950408889634
DATA geluc<>+4(SB)/4, $0x3f318000 // ln2hi 0.693359375
DATA geluc<>+8(SB)/4, $0xb95e8083 // ln2lo -0.00021219444
DATA geluc<>+12(SB)/4, $0x39506967 // p0 0.000198756915
DATA geluc<>+16(SB)/4, $0x3ab743ce // p1 0.0013981999507
DATA geluc<>+20(SB)/4, $0x3c088908 // p2 0.0083334519073
DATA geluc<>+24(SB)/4, $0x3d2aa9c1 // p3 0.041665795894
DATA geluc<>+28(SB)/4, $0x3e2aaaaa // p4 0.16666665459
DATA geluc<>+32(SB)/4, $0x3f000000 // p5 0.50000001201
DATA geluc<>+36(SB)/4, $0x3f800000 // one 1.0
DATA geluc<>+40(SB)/4, $0xc2d00000 // lo -104.0
DATA geluc<>+44(SB)/4, $0x3f4c422a // c 0.7978845608028654
DATA geluc<>+48(SB)/4, $0x3d372713 // k 0.044715
DATA geluc<>+52(SB)/4, $0x3e095d4f // k3 0.134145
DATA geluc<>+56(SB)/4, $0x3f000000 // half 0.5
DATA geluc<>+60(SB)/4, $0xc0000000 // mtwo -2.0
DATA geluc<>+64(SB)/4, $0x7fffffff // abs mask
GLOBL geluc<>(SB), RODATA|NOPTR, $68

// func gelu512(x, y, d *float32, n int)
//
// The tanh GELU of x[i] into y[i] and, when d is not nil, its derivative
// into d[i], 16 lanes per step (n a multiple of 16): u = c·(v+k·v³),
// E = e^{−2|u|} (exp512's steps), q = 1/(1+E); 1+tanh(u) = 2q and
// 1−tanh(u) = 2Eq for u ≥ 0, swapped for u < 0 (no cancellation);
// y = v·(1+tanh)/2, d = (1+tanh)/2 + v·(1+tanh)(1−tanh)/2·c·(1+3k·v²).
TEXT ·gelu512(SB), NOSPLIT, $0-32
	MOVQ x+0(FP), SI
	MOVQ y+8(FP), DI
	MOVQ d+16(FP), DX
	MOVQ n+24(FP), CX
	VBROADCASTSS geluc<>+0(SB), Z16
	VBROADCASTSS geluc<>+4(SB), Z17
	VBROADCASTSS geluc<>+8(SB), Z18
	VBROADCASTSS geluc<>+12(SB), Z19
	VBROADCASTSS geluc<>+16(SB), Z20
	VBROADCASTSS geluc<>+20(SB), Z21
	VBROADCASTSS geluc<>+24(SB), Z22
	VBROADCASTSS geluc<>+28(SB), Z23
	VBROADCASTSS geluc<>+40(SB), Z24
	VBROADCASTSS geluc<>+36(SB), Z25
	VBROADCASTSS geluc<>+44(SB), Z26
	VBROADCASTSS geluc<>+48(SB), Z27
	VBROADCASTSS geluc<>+56(SB), Z28
	VBROADCASTSS geluc<>+32(SB), Z29
	VBROADCASTSS geluc<>+60(SB), Z30
	VBROADCASTSS geluc<>+52(SB), Z15
	VPBROADCASTD geluc<>+64(SB), Z31 // abs mask
	SHRQ $4, CX
	JZ   gdone

gloop:
	VMOVUPS      (SI), Z0            // v
	VMULPS       Z0, Z0, Z1          // v²
	VMULPS       Z0, Z1, Z2          // v³
	VFMADD213PS  Z0, Z27, Z2         // v + k·v³   (Z27 = k)
	VMULPS       Z26, Z2, Z2         // u = c·(v + k·v³)
	VPANDD       Z31, Z2, Z2         // |u|
	VMULPS       Z30, Z2, Z2         // t = -2|u|
	VMAXPS       Z2, Z24, Z2         // max(-104, t)
	VMULPS       Z16, Z2, Z3
	VRNDSCALEPS  $0, Z3, Z3          // n
	VFNMADD231PS Z17, Z3, Z2         // r
	VFNMADD231PS Z18, Z3, Z2
	VMOVAPS      Z19, Z4
	VFMADD213PS  Z20, Z2, Z4
	VFMADD213PS  Z21, Z2, Z4
	VFMADD213PS  Z22, Z2, Z4
	VFMADD213PS  Z23, Z2, Z4
	VFMADD213PS  Z29, Z2, Z4         // + 0.5 (Z29 = p5)
	VMULPS       Z2, Z2, Z5
	VFMADD213PS  Z2, Z5, Z4
	VADDPS       Z25, Z4, Z4
	VSCALEFPS    Z3, Z4, Z4          // E
	VADDPS       Z25, Z4, Z5         // 1+E
	VDIVPS       Z5, Z25, Z5         // q = 1/(1+E)
	VADDPS       Z5, Z5, Z6          // plus = 2q
	VMULPS       Z4, Z6, Z7          // minus = 2Eq
	VXORPS       X8, X8, X8
	VCMPPS       $1, Z8, Z0, K1      // v < 0
	VMOVAPS      Z6, Z9
	VMOVAPS      Z7, K1, Z6          // plus  = v<0 ? minus : plus
	VMOVAPS      Z9, K1, Z7          // minus = v<0 ? plus : minus
	VMULPS       Z28, Z6, Z10        // plus/2
	VMULPS       Z0, Z10, Z11        // y = v·plus/2
	VMOVUPS      Z11, (DI)
	TESTQ        DX, DX
	JZ           gnext
	VMULPS       Z10, Z7, Z12        // plus·minus/2
	VMULPS       Z0, Z12, Z12        // v·plus·minus/2
	VMULPS       Z26, Z12, Z12       // ·c
	VMOVAPS      Z1, Z13
	VFMADD213PS  Z25, Z15, Z13       // 1 + 3k·v²  (Z15 = 3k)
	VFMADD213PS  Z10, Z13, Z12       // ·(1+3k·v²) + plus/2
	VMOVUPS      Z12, (DX)
	ADDQ         $64, DX

gnext:
	ADDQ $64, SI
	ADDQ $64, DI
	DECQ CX
	JNZ  gloop

gdone:
	VZEROUPPER
	RET
