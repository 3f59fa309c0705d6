package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stylespace/style"
	"github.com/stylespace/style/examples/internal/cli"
	"github.com/stylespace/style/study"
)

// TestMain runs the program itself when the test binary is re-executed
// by TestTrainSIGTERM.
func TestMain(m *testing.M) {
	cli.RunAsMain("TRAIN_TEST_MAIN", "train", main)
	os.Exit(m.Run())
}

// TestTrainOffline trains on the generated network (no -weights, nothing
// downloaded), flags given after others in any order: the program says
// the network is generated, and the head records its seed and width.
func TestTrainOffline(t *testing.T) {
	pairs, _, _ := fixture(t, 24)
	out := filepath.Join(t.TempDir(), "out")
	var stdout, stderr bytes.Buffer
	args := []string{"-pairs", pairs, "-images", filepath.Join(cli.FashionDir, "images"), "-out", out,
		"-epochs", "2", "-quiet", "-weights-seed", "4", "-weights-divisor", "16"}
	require.NoError(t, run(context.Background(), args, &stdout, &stderr), stderr.String())
	assert.Contains(t, stdout.String(), "generated vgg16 (seed 4, width divisor 16")
	assert.Contains(t, stdout.String(), "not\n  learned on ImageNet")
	head, err := style.LoadHead(filepath.Join(out, study.HeadFile))
	require.NoError(t, err)
	assert.Equal(t, uint64(4), head.Backbone.Seed)
	assert.Equal(t, 16, head.Backbone.Divisor)
	assert.Empty(t, head.Backbone.SHA256)

	err = run(context.Background(), []string{"-h"}, &stdout, &stderr)
	assert.ErrorIs(t, err, flag.ErrHelp)
	assert.Equal(t, cli.ExitOK, cli.ExitCode(err, false))
	err = run(context.Background(), []string{"-weights", "a", "-download"}, &stdout, &stderr)
	assert.Equal(t, cli.ExitUsage, cli.ExitCode(err, false), "%v", err)
}

// TestTrainAllImagesMissing points the pair list at an empty folder: the
// study cannot run, but the failure report is written and summarised.
func TestTrainAllImagesMissing(t *testing.T) {
	pairs, _, names := fixture(t, 24)
	dir := t.TempDir()
	empty := filepath.Join(dir, "photos")
	require.NoError(t, os.Mkdir(empty, 0o777))
	out := filepath.Join(dir, "out")
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), []string{"-pairs", pairs, "-images", empty, "-out", out, "-quiet", "-weights-divisor", "16"}, &stdout, &stderr)
	require.Error(t, err)
	report := filepath.Join(out, study.FailedImagesFile)
	n := cli.Count(len(names))
	assert.Contains(t, stderr.String(), fmt.Sprintf("failed: %s of %s images not found in %s", n, n, empty))
	assert.Contains(t, stderr.String(), "listed in "+report)
	b, rerr := os.ReadFile(report)
	require.NoError(t, rerr)
	assert.Len(t, strings.Split(strings.TrimSpace(string(b)), "\n"), 1+len(names))

	missing := filepath.Join(dir, "nope")
	err = run(context.Background(), []string{"-pairs", pairs, "-images", missing, "-out", out}, &stdout, &stderr)
	assert.EqualError(t, err, "image folder "+missing+" does not exist")
	file := filepath.Join(dir, "file")
	require.NoError(t, os.WriteFile(file, nil, 0o644))
	err = run(context.Background(), []string{"-pairs", pairs, "-out", filepath.Join(file, "out")}, &stdout, &stderr)
	assert.ErrorContains(t, err, "cannot create output folder "+filepath.Join(file, "out"))
}

// TestTrainSIGTERM runs the program as a subprocess, stops it with SIGTERM
// during the feature extraction, and checks the exit status 130, the
// message, and that the next run resumes from the feature store.
func TestTrainSIGTERM(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the program twice")
	}
	pairs, _, names := fixture(t, 60)
	out := filepath.Join(t.TempDir(), "out")
	args := fmt.Sprintf("-pairs %s -images %s -out %s -epochs 2 -workers 1 -weights-divisor 8", pairs, filepath.Join(cli.FashionDir, "images"), out)
	code, errOut, signalled, err := cli.Terminate("TRAIN_TEST_MAIN", args, func(line string) bool {
		return strings.HasPrefix(line, "features") && strings.Contains(line, "(10%)")
	})
	require.NoError(t, err)
	require.True(t, signalled, "no progress seen:\n%s", errOut)
	assert.Equal(t, cli.ExitInterrupted, code, errOut)
	assert.Contains(t, errOut, "train: interrupted; run the same command again to resume")
	assert.NoFileExists(t, filepath.Join(out, study.HeadFile))

	var so, se bytes.Buffer
	require.NoError(t, run(context.Background(), append(strings.Fields(args), "-quiet"), &so, &se), se.String())
	assert.Regexp(t, fmt.Sprintf(`Images: %d distinct: \d+ extracted now, [1-9]\d* from the feature store, 0 failed`, len(names)), so.String())
}
