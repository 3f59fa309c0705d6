package ann

// sqDistBounded returns the squared Euclidean distance between a and b
// (len(b) >= len(a)), summed in float32 with four accumulators, and true;
// or, as soon as a partial sum exceeds bound, an unspecified value and
// false. The partial sums only grow, so an abandoned item is strictly
// farther than bound; an item that is not abandoned gets exactly the value
// sqDistBounded(a, b, +Inf) gives. The plain Go reference is
//
//	var s float32
//	for i := range a { d := a[i] - b[i]; s += d * d }
//
// up to the order of the additions. The order is the one of the root
// package's exact scan (its sqDistBounded and the kernels that match it),
// so the index reports bit-identical distances.
func sqDistBounded(a, b []float32, bound float32) (float32, bool) {
	b = b[:len(a)]
	var s0, s1, s2, s3 float32
	for len(a) >= 32 {
		x, y := a[:32:32], b[:32:32]
		for j := 0; j < 32; j += 8 {
			xx, yy := x[j:j+8:j+8], y[j:j+8:j+8]
			d0 := xx[0] - yy[0]
			d1 := xx[1] - yy[1]
			d2 := xx[2] - yy[2]
			d3 := xx[3] - yy[3]
			s0 += float32(d0 * d0)
			s1 += float32(d1 * d1)
			s2 += float32(d2 * d2)
			s3 += float32(d3 * d3)
			d0 = xx[4] - yy[4]
			d1 = xx[5] - yy[5]
			d2 = xx[6] - yy[6]
			d3 = xx[7] - yy[7]
			s0 += float32(d0 * d0)
			s1 += float32(d1 * d1)
			s2 += float32(d2 * d2)
			s3 += float32(d3 * d3)
		}
		if (s0+s1)+(s2+s3) > bound {
			return 0, false
		}
		a, b = a[32:], b[32:]
	}
	for len(a) >= 4 {
		x, y := a[:4:4], b[:4:4]
		d0 := x[0] - y[0]
		d1 := x[1] - y[1]
		d2 := x[2] - y[2]
		d3 := x[3] - y[3]
		s0 += float32(d0 * d0)
		s1 += float32(d1 * d1)
		s2 += float32(d2 * d2)
		s3 += float32(d3 * d3)
		a, b = a[4:], b[4:]
	}
	for i := range a {
		d := a[i] - b[i]
		s0 += float32(d * d)
	}
	s := (s0 + s1) + (s2 + s3)
	if s > bound {
		return 0, false
	}
	return s, true
}
