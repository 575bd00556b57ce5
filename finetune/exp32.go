package finetune

import "math"

// exp32 is e^x in float32 precision (Cephes' expf: range reduction by
// ln 2 in two parts and a degree-5 polynomial, within 2 ulp), about three
// times faster than float64 math.Exp. Results below e^-87.3 flush to 0.
func exp32(x float32) float32 {
	switch {
	case x > 88:
		return float32(math.Exp(float64(x))) // 2^n would overflow the bits below

	case x < -87.33654:
		return 0
	case x != x:
		return x
	}
	t := x*1.44269504088896341 + 0.5
	n := int32(t)
	if t < 0 && float32(n) != t {
		n-- // floor
	}
	fn := float32(n)
	r := x - fn*0.693359375 + fn*2.12194440e-4
	p := float32(1.9875691500e-4)
	p = p*r + 1.3981999507e-3
	p = p*r + 8.3334519073e-3
	p = p*r + 4.1665795894e-2
	p = p*r + 1.6666665459e-1
	p = p*r + 5.0000001201e-1
	y := p*r*r + r + 1
	return y * math.Float32frombits(uint32(n+127)<<23)
}

// expT is e^x in the precision of T.
func expT[T float](x T) T {
	if _, ok := any(x).(float32); ok {
		return T(exp32(float32(x)))
	}
	return T(math.Exp(float64(x)))
}
