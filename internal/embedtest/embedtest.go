// Package embedtest measures how well an embedding keeps the structure of
// its input, for the tests of t-SNE and of the pictures drawn from it. The
// measures are those of scikit-learn, computed by brute force in O(N²):
// meant for test-sized data.
//
// Points are rows of row-major slices: row i of x is x[i*d:(i+1)*d].
package embedtest

import (
	"cmp"
	"slices"
)

// sqDist is the squared Euclidean distance of rows i and j, in float64.
func sqDist[T float32 | float64](x []T, d, i, j int) float64 {
	a, b := x[i*d:(i+1)*d], x[j*d:(j+1)*d]
	s := 0.0
	for k := range a {
		v := float64(a[k]) - float64(b[k])
		s += v * v
	}
	return s
}

// Trustworthiness is scikit-learn's sklearn.manifold.trustworthiness with
// Euclidean distances: how far the k nearest neighbours of each point in
// the embedding y (dims columns) are from being its k nearest neighbours in
// the input x (d columns), 1 meaning that they all are.
func Trustworthiness[T, U float32 | float64](x []T, d int, y []U, dims int, k int) float64 {
	n := len(x) / d
	rank := make([]int, n)
	order := make([]int, n)
	dx := make([]float64, n)
	dy := make([]float64, n)
	sum := 0.0
	for i := 0; i < n; i++ {
		for j := 0; j < n; j++ {
			dx[j] = sqDist(x, d, i, j)
			dy[j] = sqDist(y, dims, i, j)
			order[j] = j
		}
		dx[i], dy[i] = -1, -1
		slices.SortStableFunc(order, func(a, b int) int { return cmp.Compare(dx[a], dx[b]) })
		for r, j := range order {
			rank[j] = r // self has rank 0
		}
		for j := range order {
			order[j] = j
		}
		slices.SortStableFunc(order, func(a, b int) int { return cmp.Compare(dy[a], dy[b]) })
		for _, j := range order[1 : k+1] {
			if r := rank[j]; r > k {
				sum += float64(r - k)
			}
		}
	}
	return 1 - sum*2/(float64(n)*float64(k)*(2*float64(n)-3*float64(k)-1))
}

// KNNAccuracy is the mean folds-fold cross-validated accuracy of a
// k-nearest-neighbour majority vote on the embedding y (dims columns)
// predicting labels (ties to the smallest label, as scikit-learn's
// KNeighborsClassifier), with stratified folds: the samples of each class
// are cut into folds consecutive blocks, as StratifiedKFold without
// shuffling does up to the exact block boundaries.
func KNNAccuracy[T float32 | float64](y []T, dims int, labels []int, k, folds int) float64 {
	n := len(labels)
	fold := make([]int, n)
	byClass := map[int][]int{}
	for i, l := range labels {
		byClass[l] = append(byClass[l], i)
	}
	for _, idx := range byClass {
		for r, i := range idx {
			fold[i] = r * folds / len(idx)
		}
	}
	acc := 0.0
	type nd struct {
		d float64
		j int
	}
	for f := 0; f < folds; f++ {
		correct, total := 0, 0
		for i := 0; i < n; i++ {
			if fold[i] != f {
				continue
			}
			var cand []nd
			for j := 0; j < n; j++ {
				if fold[j] != f {
					cand = append(cand, nd{sqDist(y, dims, i, j), j})
				}
			}
			slices.SortStableFunc(cand, func(a, b nd) int { return cmp.Compare(a.d, b.d) })
			votes := map[int]int{}
			for _, c := range cand[:k] {
				votes[labels[c.j]]++
			}
			best, bestN := -1, -1
			for l, v := range votes {
				if v > bestN || (v == bestN && l < best) {
					best, bestN = l, v
				}
			}
			if best == labels[i] {
				correct++
			}
			total++
		}
		acc += float64(correct) / float64(total)
	}
	return acc / float64(folds)
}
