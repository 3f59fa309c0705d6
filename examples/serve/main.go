// Command serve answers "do these go well together?" over HTTP: a JSON API
// and a small web page where a person drops in two product photos and sees
// the style distance and the verdict, or browses the items of a catalogue
// that go best with a chosen one.
//
//	go run ./examples/serve -weights vgg16.safetensors \
//	    -head style-study/head.safetensors -catalog catalog.bin \
//	    -images ../shared/fashion/images -meta ../shared/fashion/styles.csv
//
// then open http://127.0.0.1:8080/. The network is VGG16 read from
// -weights or, without it, generated from -weights-seed and -divisor (as
// examples/train and examples/recommend do; its features are not ImageNet
// features). -head, a trained siamese head (examples/train writes one), is
// required and must fit the network: the command refuses to start
// otherwise. -catalog (examples/recommend writes one) enables
// recommendations; it must have been built with the same network and head
// (or the same network alone). -images is the folder of the catalogue's
// photos, for thumbnails; -meta a CSV giving products' names and categories
// (columns -id-column, -name-column, -category-column).
//
// The server listens at once and loads the model in the background:
// /readyz answers 503 until the model is loaded, and the process exits with
// status 1 if it fails to load. The model is loaded once and shared by all
// requests.
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
// At most -workers (GOMAXPROCS) requests decode images and extract
// features at once, and at most -queue (16) more may wait for one of them,
// their bodies read: a request beyond those is refused at once with 503 and
// Retry-After: 1, before its body is read, so a burst cannot exhaust
// memory. A waiting request that gets no worker within its -timeout is
// refused with 503 too. -queue 0 refuses a request at once whenever every
// worker is busy.
//
// SIGINT or SIGTERM starts a graceful shutdown: /readyz answers 503 at
// once, new connections are still accepted for -drain-delay (0 s, for load
// balancers to notice), then the listener closes and requests in flight
// have -shutdown-timeout (30 s) to finish. A second signal ends the process
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
)

func main() {
	err := run(context.Background(), os.Args[1:], os.Stderr, nil)
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "serve: %v\n", err)
		os.Exit(1)
	}
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

// parseFlags reads the command line.
func parseFlags(args []string, stderr io.Writer) (*config, error) {
	c := &config{}
	fl := flag.NewFlagSet("serve", flag.ContinueOnError)
	fl.SetOutput(stderr)
	fl.StringVar(&c.addr, "addr", "127.0.0.1:8080", "address to listen on")
	fl.StringVar(&c.model.Weights, "weights", "", "VGG16 weight file (.safetensors or torchvision .pth); empty: a generated network, NOT ImageNet features")
	fl.Uint64Var(&c.model.Seed, "weights-seed", 1, "seed of the generated network (without -weights)")
	fl.IntVar(&c.model.Divisor, "divisor", 8, "width divisor of the generated network (without -weights): 1 is full VGG16")
	fl.StringVar(&c.model.Head, "head", "", "trained siamese head (.safetensors from examples/train); required")
	fl.StringVar(&c.model.Catalog, "catalog", "", "catalogue file (from examples/recommend) for recommendations; empty: none")
	fl.StringVar(&c.model.Images, "images", "", "folder of the catalogue's photos, for thumbnails")
	fl.StringVar(&c.model.Meta, "meta", "", "CSV file of product names and categories, e.g. ../shared/fashion/styles.csv")
	fl.StringVar(&c.model.IDColumn, "id-column", "id", "column of -meta holding the item ID (file name with or without extension)")
	fl.StringVar(&c.model.NameCol, "name-column", "productDisplayName", "column of -meta holding the product name")
	fl.StringVar(&c.model.CatCol, "category-column", "articleType", "column of -meta holding the category, for items the catalogue gives none")
	fl.Int64Var(&c.server.MaxUpload, "max-upload", 16<<20, "largest request body, and largest fetched image, in bytes")
	fl.IntVar(&c.server.MaxPixels, "max-pixels", 25_000_000, "largest image in pixels (width x height), checked before decoding")
	fl.DurationVar(&c.server.Timeout, "timeout", 30*time.Second, "time a request may take in all")
	fl.IntVar(&c.server.Workers, "workers", 0, "requests extracting features at once (0: GOMAXPROCS)")
	fl.IntVar(&c.server.Queue, "queue", 16, "requests that may wait for a worker; more are refused with 503 (0: refuse whenever all workers are busy)")
	fl.BoolVar(&c.server.FetchPrivate, "fetch-private", false, "allow image URLs on loopback, private and link-local addresses")
	fl.DurationVar(&c.shutdownTimeout, "shutdown-timeout", 30*time.Second, "time requests in flight have to finish after SIGINT or SIGTERM")
	fl.DurationVar(&c.drainDelay, "drain-delay", 0, "time between readiness turning 503 and the listener closing, on shutdown")
	fl.StringVar(&c.logFormat, "log-format", "text", "log format: text or json")
	fl.Usage = func() {
		fmt.Fprintf(fl.Output(), "Usage: serve -head FILE [-weights FILE] [-catalog FILE -images DIR [-meta CSV]] [flags]\n\n")
		fl.PrintDefaults()
	}
	if err := fl.Parse(args); err != nil {
		return nil, err
	}
	if fl.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fl.Args())
	}
	s := &c.server
	switch {
	case c.model.Head == "":
		return nil, errors.New("-head is required: the trained siamese head that gives distances and verdicts")
	case c.model.Weights == "" && (c.model.Divisor <= 0 || 64%c.model.Divisor != 0):
		return nil, fmt.Errorf("-divisor %d: must divide 64 (1, 2, 4, 8, 16, 32 or 64)", c.model.Divisor)
	case s.MaxUpload <= 0 || s.MaxUpload > maxBytes:
		return nil, fmt.Errorf("-max-upload %d: must be between 1 and %d bytes", s.MaxUpload, maxBytes)
	case s.MaxPixels <= 0 || s.MaxPixels > maxPixels:
		return nil, fmt.Errorf("-max-pixels %d: must be between 1 and %d", s.MaxPixels, maxPixels)
	case s.Timeout <= 0:
		return nil, fmt.Errorf("-timeout %v: must be positive", s.Timeout)
	case s.Workers < 0:
		return nil, fmt.Errorf("-workers %d: must not be negative", s.Workers)
	case s.Queue < 0:
		return nil, fmt.Errorf("-queue %d: must not be negative", s.Queue)
	case c.shutdownTimeout <= 0:
		return nil, fmt.Errorf("-shutdown-timeout %v: must be positive", c.shutdownTimeout)
	case c.drainDelay < 0:
		return nil, fmt.Errorf("-drain-delay %v: must not be negative", c.drainDelay)
	case c.logFormat != "text" && c.logFormat != "json":
		return nil, fmt.Errorf("-log-format %q: must be text or json", c.logFormat)
	case c.model.Catalog == "" && c.model.Images != "":
		return nil, errors.New("-images is the folder of the catalogue's photos: give -catalog too")
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
