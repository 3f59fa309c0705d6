// Command serve answers "do these go well together?" over HTTP: a JSON API
// and a small web page where a person drops in two product photos and sees
// the style distance and the verdict, or browses the items of a catalogue
// that go best with a chosen one.
//
//	go run ./examples/serve -weights vgg16.safetensors \
//	    -head style-study/head.safetensors -catalog catalog.stylecat \
//	    -images ../shared/fashion/images -meta ../shared/fashion/styles.csv
//
// then open http://127.0.0.1:8080/. The network and the head are chosen by
// the flags every example program shares, with the same names and meanings
// (see examples/internal/cli): the backbone (-backbone, VGG16 by default)
// read from -weights, or the published ImageNet weights with -download
// (downloaded once into -weights-cache), or without either generated from
// -weights-seed and -weights-divisor (8 times narrower than VGG16 by
// default; its features are not ImageNet features); -conv the convolution
// algorithm; -quiet no progress bars for a download. -head, a trained
// siamese head (examples/train writes one, at the default
// style-study/head.safetensors), must fit the network: the command refuses
// to start otherwise. -catalog (examples/recommend writes one) enables
// recommendations; it must have been built with the same network and head
// (or the same network alone). -images is the folder of the catalogue's
// photos, for thumbnails; -meta a CSV giving products' names and categories
// (columns -id-column, -name-column, -category-column).
//
// The server listens at once and loads the model in the background:
// /readyz answers 503 until the model is loaded, and the process exits with
// status 1 if it fails to load (2 if a flag's value is at fault, such as a
// -weights-divisor the network does not have). The model is loaded once and
// shared by all requests.
//
// The exit statuses are those of the other example programs: 0 for -h and
// after a graceful shutdown, 1 for an error, 2 for a bad flag or argument
// (the message is followed by "Run serve -h for help."). A server's normal
// end is a signal, so unlike the batch programs, which exit with 130 when a
// signal interrupts their work, serve exits with 0 when SIGINT or SIGTERM
// stops it and every request in flight finishes (see below), and with 1 if
// the shutdown fails (requests still running after -shutdown-timeout).
//
// # Web page
//
// / is a page where a person drops two photos onto two boxes (or chooses
// them), sees them side by side, and gets the verdict, the distance against
// the cutoff as a bar with the cutoff marked, and the numbers, as in
// "Distance 0.412 (cutoff 0.820)". /recommend picks a catalogue item (from
// a list, or among a sample of thumbnails) and shows the items that go best
// with it, as cards with thumbnails, names, categories and distances; each
// card leads to its own recommendations; a photo can be uploaded instead.
// The pages are rendered on the server (html/template) with a little plain
// JavaScript for the uploads; everything they use is embedded in the
// binary, so they work without a network.
//
// # JSON API
//
// POST /api/score compares two photos, sent as the files a and b of a
// multipart form, or as URLs: form fields a and b, or a JSON object.
//
//	curl -F a=@shirt.jpg -F b=@trousers.jpg http://127.0.0.1:8080/api/score
//	curl -H 'Content-Type: application/json' \
//	    -d '{"a": "https://example.com/shirt.jpg", "b": "https://example.com/trousers.jpg"}' \
//	    http://127.0.0.1:8080/api/score
//
//	{"distance":0.41,"cutoff":0.82,"compatible":true,"verdict":"Nice, this looks good together!"}
//
// distance is the Euclidean distance of the two photos in the style space
// (smaller is more compatible); the pair is compatible when it is at most
// the head's cutoff.
//
// GET /api/recommend?id=ITEM&k=5[&other_category=1] returns the k catalogue
// items (default 5, at most 100) that go best with the catalogue item ITEM
// (its ID, such as 10004.jpg, or the ID without extension), closest first;
// other_category=1 leaves out the items of ITEM's category. POST
// /api/recommend does the same for a photo: the file or URL image of a
// multipart form, a URL form field image, or JSON {"image": "https://..."};
// k, category (the photo's category) and other_category (leave out that
// category) come from the query string, form fields or JSON.
//
//	curl 'http://127.0.0.1:8080/api/recommend?id=10004&k=3&other_category=1'
//	curl -F image=@shirt.jpg -F category=Tshirts -F other_category=1 \
//	    'http://127.0.0.1:8080/api/recommend?k=3'
//
//	[{"id":"10014.jpg","name":"Nike Unisex Feather lite Blue Caps","category":"Caps",
//	  "distance":0.37,"thumbnail_url":"/thumb/10014.jpg"}, ...]
//
// name and category come from the catalogue and -meta; thumbnail_url is
// omitted without -images.
//
// GET /thumb/ITEM returns a JPEG (PNG for photos with transparency)
// thumbnail of a catalogue item, fitting a 160 x 160 box or ?size=N (16 to
// 512). Only catalogue items are served, read through the -images folder
// with names confined to it.
//
// GET /healthz answers 200 while the process runs. GET /readyz answers 200
// once the model is loaded, and 503 while it loads and once shutdown has
// begun.
//
// Errors are JSON objects {"error": "..."} with the status saying what went
// wrong: 400 a malformed request (missing field, bad URL, bad k), 404 an
// unknown item, 413 a body over -max-upload bytes or an image over
// -max-pixels pixels, 415 a file that is not a JPEG, PNG or GIF image, 422
// an image that cannot be used (truncated, empty, a distance that is not a
// finite number, a URL that could not be fetched), 503 the model still
// loading or the server overloaded (with Retry-After), 504 the request
// taking longer than -timeout.
//
// # Limits and overload
//
// A request body is at most -max-upload bytes (16 MiB); an image at most
// -max-pixels pixels (25 megapixels), checked from its header before it is
// decoded. A request may take -timeout (30 s) in all, including reading
// its body and fetching URLs. URLs are fetched only from public addresses
// (not loopback, private or link-local ones) unless -fetch-private is set.
//
// At most -workers (0, the default, means GOMAXPROCS; it is the images
// processed at once, as in the other programs) requests decode images and
// extract features at once, and at most -queue (16) more may wait for one of them,
// their bodies read: a request beyond those is refused at once with 503 and
// Retry-After: 1, before its body is read, so a burst cannot exhaust
// memory. A waiting request that gets no worker within its -timeout is
// refused with 503 too. -queue 0 refuses a request at once whenever every
// worker is busy.
//
// SIGINT or SIGTERM starts a graceful shutdown: /readyz answers 503 at
// once, new connections are still accepted for -drain-delay (0 s, for load
// balancers to notice), then the listener closes and requests in flight
// have -shutdown-timeout (30 s) to finish; the process then exits with
// status 0, or 1 if some did not finish. A second signal ends the process
// at once.
//
// Each request is logged as one line (log/slog, -log-format text or json)
// with its method, path, status, duration, response bytes and, for
// errors, the message.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"syscall"
	"time"

	"github.com/stylespace/style/examples/internal/cli"
)

func main() {
	cli.MainService("serve", func(ctx context.Context, args []string, stdout, stderr io.Writer) error {
		return run(ctx, args, stderr, nil)
	})
}

// config is what the command line asks for.
type config struct {
	addr            string
	model           modelConfig
	server          serverConfig
	shutdownTimeout time.Duration
	drainDelay      time.Duration
	logFormat       string
}

// parseFlags reads the command line. Its errors are those of cli.Parse
// (flag.ErrHelp for -h) and *cli.UsageError.
func parseFlags(args []string, stderr io.Writer) (*config, error) {
	c := &config{}
	fl := flag.NewFlagSet("serve", flag.ContinueOnError)
	fl.SetOutput(stderr)
	fl.StringVar(&c.addr, "addr", "127.0.0.1:8080", "`address` to listen on")
	c.model.Register(fl, cli.RequiredHead)
	fl.StringVar(&c.model.Catalog, "catalog", "", "catalogue `file` (from examples/recommend) for recommendations; empty: none")
	fl.StringVar(&c.model.Images, "images", "", "`folder` of the catalogue's photos, for thumbnails")
	fl.StringVar(&c.model.Meta, "meta", "", "CSV `file` of product names and categories, e.g. ../shared/fashion/styles.csv")
	fl.StringVar(&c.model.IDColumn, "id-column", "id", "`column` of -meta holding the item ID (file name with or without extension)")
	fl.StringVar(&c.model.NameCol, "name-column", cli.DefaultNameColumn, "`column` of -meta holding the product name")
	fl.StringVar(&c.model.CatCol, "category-column", cli.DefaultCategoryColumn, "`column` of -meta holding the category, for items the catalogue gives none")
	fl.Int64Var(&c.server.MaxUpload, "max-upload", 16<<20, "largest request body, and largest fetched image, in bytes")
	fl.IntVar(&c.server.MaxPixels, "max-pixels", 25_000_000, "largest image in pixels (width x height), checked before decoding")
	fl.DurationVar(&c.server.Timeout, "timeout", 30*time.Second, "time a request may take in all")
	fl.IntVar(&c.server.Queue, "queue", 16, "requests that may wait for a worker (see -workers); more are refused with 503 (0: refuse whenever all workers are busy)")
	fl.BoolVar(&c.server.FetchPrivate, "fetch-private", false, "allow image URLs on loopback, private and link-local addresses")
	fl.DurationVar(&c.shutdownTimeout, "shutdown-timeout", 30*time.Second, "time requests in flight have to finish after SIGINT or SIGTERM")
	fl.DurationVar(&c.drainDelay, "drain-delay", 0, "time between readiness turning 503 and the listener closing, on shutdown")
	fl.StringVar(&c.logFormat, "log-format", "text", "log `format`: text or json")
	fl.Usage = func() {
		fmt.Fprintf(fl.Output(), "Usage: serve [-head FILE] [-weights FILE | -download] [-catalog FILE -images DIR [-meta CSV]] [flags]\n\n")
		fl.PrintDefaults()
	}
	pos, err := cli.Parse(fl, args)
	if err != nil {
		return nil, err
	}
	if len(pos) > 0 {
		return nil, cli.Usagef("unexpected arguments %q (all settings are flags; see -h)", pos)
	}
	if err := c.model.Check(); err != nil {
		return nil, err
	}
	// -workers, the images processed at once in every program, is here
	// the number of requests decoding images and extracting features at
	// once (and the goroutines the network may use for one of them).
	c.server.Workers = c.model.Workers
	s := &c.server
	switch {
	case c.model.Head == "":
		return nil, cli.Usagef("-head is required: the trained siamese head that gives distances and verdicts")
	case s.MaxUpload <= 0 || s.MaxUpload > maxBytes:
		return nil, cli.Usagef("-max-upload %d: must be between 1 and %d bytes", s.MaxUpload, maxBytes)
	case s.MaxPixels <= 0 || s.MaxPixels > maxPixels:
		return nil, cli.Usagef("-max-pixels %d: must be between 1 and %d", s.MaxPixels, maxPixels)
	case s.Timeout <= 0:
		return nil, cli.Usagef("-timeout %v: must be positive", s.Timeout)
	case s.Queue < 0:
		return nil, cli.Usagef("-queue %d: must not be negative", s.Queue)
	case c.shutdownTimeout <= 0:
		return nil, cli.Usagef("-shutdown-timeout %v: must be positive", c.shutdownTimeout)
	case c.drainDelay < 0:
		return nil, cli.Usagef("-drain-delay %v: must not be negative", c.drainDelay)
	case c.logFormat != "text" && c.logFormat != "json":
		return nil, cli.Usagef("-log-format %q: must be text or json", c.logFormat)
	case c.model.Catalog == "" && c.model.Images != "":
		return nil, cli.Usagef("-images is the folder of the catalogue's photos: give -catalog too")
	}
	if s.Workers == 0 {
		s.Workers = runtime.GOMAXPROCS(0)
	}
	return c, nil
}

// runHooks lets tests reach into run.
type runHooks struct {
	setup   func(*server)     // called before the server serves
	started func(addr string) // called once it accepts connections, before the model is loaded
}

// run is the whole program, callable from tests: it serves until ctx is
// done or SIGINT or SIGTERM arrives, then shuts down gracefully. hooks may
// be nil.
func run(ctx context.Context, args []string, stderr io.Writer, hooks *runHooks) error {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	cfg, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	cfg.model.Bars = cli.NewBars(stderr, cfg.model.Quiet) // a -download
	var h slog.Handler = slog.NewTextHandler(stderr, nil)
	if cfg.logFormat == "json" {
		h = slog.NewJSONHandler(stderr, nil)
	}
	log := slog.New(h)

	s := newServer(cfg.server, log)
	if hooks != nil && hooks.setup != nil {
		hooks.setup(s)
	}
	ln, err := net.Listen("tcp", cfg.addr)
	if err != nil {
		return err
	}
	hs := s.httpServer()
	served := make(chan error, 1)
	go func() { served <- hs.Serve(ln) }()
	log.Info("listening", "addr", ln.Addr().String(), "workers", cfg.server.Workers, "queue", cfg.server.Queue)
	if hooks != nil && hooks.started != nil {
		hooks.started(ln.Addr().String())
	}

	loadCtx, cancelLoad := context.WithCancel(ctx)
	defer cancelLoad()
	loaded := make(chan error, 1)
	go func() {
		t0 := time.Now()
		m, err := loadModel(loadCtx, cfg.model)
		if err == nil {
			s.setModel(m)
			log.Info("model loaded", "network", m.desc, "features", m.fx.FeatureLen(),
				"cutoff", m.cutoff(), "catalogue_items", m.catalogLen(), "elapsed", time.Since(t0).Round(time.Millisecond))
		}
		loaded <- err
	}()

	var runErr error
	for waiting := true; waiting; {
		select {
		case err := <-loaded:
			loaded = nil
			if err != nil {
				runErr = fmt.Errorf("loading the model: %w", err)
				waiting = false
			}
		case err := <-served:
			cancelLoad()
			if loaded != nil {
				<-loaded
			}
			s.closeModel()
			return err
		case <-ctx.Done():
			log.Info("shutting down", "drain_delay", cfg.drainDelay, "timeout", cfg.shutdownTimeout)
			waiting = false
		}
	}
	stop() // a second signal ends the process at once

	s.draining.Store(true)
	if runErr == nil && cfg.drainDelay > 0 {
		time.Sleep(cfg.drainDelay)
	}
	cancelLoad()
	shCtx, cancel := context.WithTimeout(context.Background(), cfg.shutdownTimeout)
	defer cancel()
	if err := hs.Shutdown(shCtx); err != nil {
		hs.Close()
		runErr = errors.Join(runErr, fmt.Errorf("shutdown: %w", err))
	}
	if loaded != nil {
		<-loaded
	}
	s.closeModel()
	if runErr != nil {
		log.Error("stopped", "error", runErr)
	} else {
		log.Info("stopped")
	}
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		runErr = errors.Join(runErr, err)
	}
	return runErr
}
