package cli

import (
	"fmt"
	"strings"

	"github.com/stylespace/style"
)

// ConvUsage is the help text of the -conv flag of the example programs.
const ConvUsage = "convolution `algorithm`: auto (the fastest accurate one per layer), im2col, winograd (F(2x2,3x3)) or winograd4x4 (F(4x4,3x3))"

// ParseConv returns the convolution algorithm named name, as
// style.ConvAlgorithm's String method writes it.
func ParseConv(name string) (style.ConvAlgorithm, error) {
	for _, a := range []style.ConvAlgorithm{style.ConvAuto, style.ConvIm2col, style.ConvWinograd, style.ConvWinograd4x4} {
		if a.String() == name {
			return a, nil
		}
	}
	return 0, fmt.Errorf("-conv %q: want auto, im2col, winograd or winograd4x4", name)
}

// IsURL reports whether s is an http or https URL rather than a file path.
func IsURL(s string) bool {
	return strings.HasPrefix(s, "http://") || strings.HasPrefix(s, "https://")
}
