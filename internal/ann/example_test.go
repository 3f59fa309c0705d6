package ann_test

import (
	"context"
	"fmt"

	"github.com/stylespace/style/internal/ann"
)

func ExampleIndex_Search() {
	// Twelve items on a line, two coordinates each.
	const dim = 2
	vecs := make([]float32, 0, 12*dim)
	for i := range 12 {
		vecs = append(vecs, float32(i), 0)
	}
	ix, err := ann.Build(context.Background(), vecs, dim, &ann.Config{Seed: 1}, nil)
	if err != nil {
		panic(err)
	}
	// The three items nearest to 4.25, then those with an odd index.
	q := []float32{4.25, 0}
	res, _ := ix.Search(nil, q, 3, 0, nil)
	fmt.Println(res)
	odd := func(i int) bool { return i%2 == 1 }
	res, complete := ix.Search(res, q, 3, 0, odd)
	fmt.Println(res, complete)
	// Output:
	// [{4 0.0625} {5 0.5625} {3 1.5625}]
	// [{5 0.5625} {3 1.5625} {7 7.5625}] true
}
