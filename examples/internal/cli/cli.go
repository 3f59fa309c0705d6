// Package cli holds what the example programs share: progress bars fed by
// the library's Progress callbacks, the model and catalogue flags, flag
// parsing, exit statuses and messages, and the failure report.
package cli

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/stylespace/style"
)

// Bars shows the progress of the library's long operations as progress
// bars, one bar per stage ("download", "features", "train", ...), written to
// a terminal or any writer (normally os.Stderr). Its Update method is a
// Progress callback. A Bars is safe for concurrent use.
type Bars struct {
	mu    sync.Mutex
	w     io.Writer
	quiet bool
	plain bool // w is not a terminal: log lines instead of redrawn bars
	stage string
	total int64
	shown int64 // plain mode: the last tenth of the total logged
	bar   *progressbar.ProgressBar
}

// NewBars returns progress bars writing to w; with quiet set, Update does
// nothing. When w is not a terminal (a log file, a pipe, a CI job), bars
// would be redrawn as endless lines, so Update writes a plain line at the
// start of each stage, at every tenth of it and at its end instead.
func NewBars(w io.Writer, quiet bool) *Bars {
	f, ok := w.(*os.File)
	plain := !ok || !term.IsTerminal(int(f.Fd()))
	return &Bars{w: w, quiet: quiet, plain: plain}
}

// updatePlain logs p as a line when it starts a stage, crosses a tenth of
// its total, ends it, or is a training epoch.
func (b *Bars) updatePlain(p style.Progress) {
	desc, ok := stageNames[p.Stage]
	if !ok {
		desc = p.Stage
	}
	desc = strings.TrimSpace(desc)
	newStage := p.Stage != b.stage || p.Total != b.total
	if newStage {
		b.stage, b.total, b.shown = p.Stage, p.Total, -1
	}
	tenth := int64(-1)
	if p.Total > 0 {
		tenth = 10 * p.Done / p.Total
	}
	if !newStage && p.Stage != "train" && tenth == b.shown {
		return
	}
	b.shown = tenth
	line := fmt.Sprintf("%s: %d", desc, p.Done)
	if p.Total > 0 {
		line += fmt.Sprintf("/%d (%d%%)", p.Total, 100*p.Done/p.Total)
	}
	if p.Stage == "train" && p.Done > 0 {
		line += fmt.Sprintf(" loss %.4f val %.4f", p.Loss, p.ValLoss)
	}
	if p.Elapsed > 0 {
		line += fmt.Sprintf(" [%s]", p.Elapsed.Round(time.Second))
	}
	fmt.Fprintln(b.w, line)
}

// stageNames are the descriptions of the library's stages.
var stageNames = map[string]string{
	"download": "downloading",
	"features": "features   ",
	"train":    "training   ",
	"tsne":     "t-SNE      ",
	"index":    "indexing   ",
}

// Update shows p (every call is drawn: the library reports at most once
// per image, epoch or 256 KiB): it starts a new bar when the stage or its total changes
// and moves the current bar otherwise. Training progress also shows the
// losses.
func (b *Bars) Update(p style.Progress) {
	if b.quiet {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.plain {
		b.updatePlain(p)
		return
	}
	if b.bar == nil || p.Stage != b.stage || p.Total != b.total {
		b.finishLocked()
		b.stage, b.total = p.Stage, p.Total
		desc, ok := stageNames[p.Stage]
		if !ok {
			desc = p.Stage
		}
		max := p.Total
		if max <= 0 {
			max = -1 // unknown: a spinner
		}
		w := b.w
		opts := []progressbar.Option{
			progressbar.OptionSetWriter(w),
			progressbar.OptionSetDescription(desc),
			progressbar.OptionSetWidth(30),
			progressbar.OptionShowCount(),
			progressbar.OptionSetSpinnerChangeInterval(0), // no ticker goroutine
			progressbar.OptionOnCompletion(func() { fmt.Fprintln(w) }),
		}
		if p.Stage == "download" && p.Total > 1<<20 {
			opts = append(opts, progressbar.OptionShowBytes(true))
		}
		b.bar = progressbar.NewOptions64(max, opts...)
	}
	if p.Stage == "train" && p.Done > 0 {
		b.bar.Describe(fmt.Sprintf("%s loss %.4f val %.4f", stageNames["train"], p.Loss, p.ValLoss))
	}
	b.bar.Set64(p.Done)
}

// Finish ends the current bar, if any, leaving it on its line.
func (b *Bars) Finish() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.finishLocked()
}

func (b *Bars) finishLocked() {
	if b.bar != nil && !b.bar.IsFinished() {
		b.bar.Exit()
	}
	b.bar = nil
}
