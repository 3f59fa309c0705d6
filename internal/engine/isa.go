package engine

import (
	"fmt"
	"slices"
	"strings"
)

// The kernel tables. Each of the four kernel families (gemm, winograd,
// dist, optim) is a family value listing its implementations, one per
// instruction-set level it has, in the order it prefers them; the pure-Go
// one is always there and always last. At start-up each family takes the
// first implementation the CPU can run (see cpu.go), and its hot paths
// read the chosen one from the family's active field. ForceISA switches
// every family at once, for tests.

// isa is an instruction-set level, lowest first.
type isa int

const (
	isaGeneric isa = iota // pure Go, on every architecture and under purego
	isaAVX2               // amd64 AVX2 (with FMA where the kernel fuses)
	isaAVX512             // amd64 AVX-512F
)

var isaNames = [...]string{isaGeneric: "generic", isaAVX2: "avx2", isaAVX512: "avx512"}

func (l isa) String() string { return isaNames[l] }

// impl is one implementation of a kernel family.
type impl[K any] struct {
	isa isa
	ok  bool // this CPU can run it
	k   K
}

// family is the kernel table of one family.
type family[K any] struct {
	name  string
	impls []impl[K] // in order of preference, the generic one last
	// active is the implementation in use: the first usable one of
	// impls, unless ForceISA chose another. Hot paths read it directly.
	active    K
	activeISA isa
}

// newFamily returns the table of a family with the given
// implementations, in order of preference, and selects the first one the
// CPU can run. The generic implementation must be last and usable.
func newFamily[K any](name string, impls ...impl[K]) family[K] {
	if last := impls[len(impls)-1]; last.isa != isaGeneric || !last.ok {
		panic("style: kernel family " + name + " has no generic implementation")
	}
	f := family[K]{name: name, impls: impls}
	for _, im := range impls {
		if im.ok {
			f.active, f.activeISA = im.k, im.isa
			break
		}
	}
	return f
}

// available returns the implementations this CPU can run, in order of
// preference.
func (f *family[K]) available() []impl[K] {
	var out []impl[K]
	for _, im := range f.impls {
		if im.ok {
			out = append(out, im)
		}
	}
	return out
}

// force makes the family use its best usable implementation of level at
// most l (the generic one at worst) and returns a function restoring the
// previous one.
func (f *family[K]) force(l isa) (restore func()) {
	prev, prevISA := f.active, f.activeISA
	best := -1
	for i, im := range f.impls {
		if im.ok && im.isa <= l && (best < 0 || im.isa > f.impls[best].isa) {
			best = i
		}
	}
	f.active, f.activeISA = f.impls[best].k, f.impls[best].isa
	return func() { f.active, f.activeISA = prev, prevISA }
}

// levels returns the levels of the usable implementations.
func (f *family[K]) levels() []isa {
	var out []isa
	for _, im := range f.impls {
		if im.ok {
			out = append(out, im.isa)
		}
	}
	return out
}

// level returns the level of the active implementation.
func (f *family[K]) level() isa { return f.activeISA }

// kernelFamily is what ForceISA and ISAs need of a family.
type kernelFamily interface {
	force(l isa) (restore func())
	levels() []isa
	level() isa
}

// families lists the kernel tables that ForceISA switches.
var families = []kernelFamily{&gemmKernels, &winogradKernels, &distKernels, &optimKernels}

// ISAs returns the names of the instruction-set levels at least one
// kernel family can run on this CPU and build, best first: a subset of
// "avx512", "avx2" and "generic", which is always last. It is meant for
// tests that run the same checks on every path through ForceISA.
func ISAs() []string {
	var have [len(isaNames)]bool
	have[isaGeneric] = true
	for _, f := range families {
		for _, l := range f.levels() {
			have[l] = true
		}
	}
	var out []string
	for l := len(isaNames) - 1; l >= 0; l-- {
		if have[l] {
			out = append(out, isaNames[l])
		}
	}
	return out
}

// GEMMISA returns the name of the instruction-set level of the GEMM
// kernel that new convolutions pack their weights for (one of ISAs), so
// that a caller choosing between convolution algorithms can follow the
// kernel's own speed profile.
func GEMMISA() string { return gemmKernels.activeISA.String() }

// ForceISA is a test hook: it makes every kernel family use its best
// implementation at or below the level name (one of ISAs), and returns a
// function restoring the previous choice. A family without that level
// falls back to the next lower one it has, and "generic" means pure Go
// everywhere. It also overrides a family's preference for a lower
// level (dist prefers AVX2 on AVX-512 CPUs; "avx512" forces its AVX-512
// kernel).
//
// Convolutions pack their weights for the GEMM kernel active when they
// are made, so make them after forcing. ForceISA and restore must not be
// called while kernels run. ForceISA panics if name is not one of ISAs().
func ForceISA(name string) (restore func()) {
	if !slices.Contains(ISAs(), name) {
		panic(fmt.Sprintf("style: ISA %q is not available on this CPU (have %s)", name, strings.Join(ISAs(), ", ")))
	}
	l := isa(slices.Index(isaNames[:], name))
	restores := make([]func(), len(families))
	for i, f := range families {
		restores[i] = f.force(l)
	}
	return func() {
		for i := len(restores) - 1; i >= 0; i-- {
			restores[i]()
		}
	}
}
