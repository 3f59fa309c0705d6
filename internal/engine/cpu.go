package engine

import "golang.org/x/sys/cpu"

// The CPU features the assembly kernels use, read once at start-up.
// x/sys/cpu honours GODEBUG settings such as cpu.avx512f=off or
// cpu.avx2=off, which is how the lower ISA paths are tested on a machine
// that has the higher ones (ForceISA does the same from within a test).
// On other architectures they are all false; under the purego build tag
// no family lists an assembly kernel, so they are not consulted.
var (
	hasAVX512F = cpu.X86.HasAVX512F
	hasAVX2    = cpu.X86.HasAVX2
	hasFMA     = cpu.X86.HasFMA
	hasBMI2    = cpu.X86.HasBMI2
)
