package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strings"
	"sync/atomic"
	"time"
)

// serverConfig holds the limits of the service.
type serverConfig struct {
	MaxUpload    int64         // largest request body and fetched image, in bytes
	MaxPixels    int           // largest image, in pixels
	Timeout      time.Duration // time a request may take in all
	Workers      int           // requests extracting features at once (> 0)
	Queue        int           // requests that may wait for a worker
	FetchPrivate bool          // fetch URLs on loopback and private addresses too
}

// server is the HTTP service. Its model is set once loaded; until then the
// endpoints that need it answer 503.
type server struct {
	cfg   serverConfig
	log   *slog.Logger
	model atomic.Pointer[model]
	// draining is set when shutdown begins: /readyz answers 503.
	draining atomic.Bool

	// admission holds a token for each image request in progress,
	// running or waiting for a worker (Workers + Queue); slots one for
	// each request decoding and extracting features (Workers);
	// thumbSlots one for each thumbnail being made.
	admission  chan struct{}
	slots      chan struct{}
	thumbSlots chan struct{}

	client *http.Client // fetches image URLs
	thumbs *thumbCache
	pages  map[string]*template.Template
	mux    *http.ServeMux

	// beforeExtract, if not nil, is called once a request holds a worker,
	// before its images are decoded: a test hook.
	beforeExtract func(ctx context.Context)
}

func newServer(cfg serverConfig, log *slog.Logger) *server {
	s := &server{
		cfg:        cfg,
		log:        log,
		admission:  make(chan struct{}, cfg.Workers+cfg.Queue),
		slots:      make(chan struct{}, cfg.Workers),
		thumbSlots: make(chan struct{}, 2*cfg.Workers),
		client:     newFetchClient(cfg.FetchPrivate),
		thumbs:     newThumbCache(1024),
		pages:      parsePages(),
		mux:        http.NewServeMux(),
	}
	s.mux.HandleFunc("GET /healthz", s.healthz)
	s.mux.HandleFunc("GET /readyz", s.readyz)
	s.mux.HandleFunc("POST /api/score", s.apiScore)
	s.mux.HandleFunc("GET /api/recommend", s.apiRecommendItem)
	s.mux.HandleFunc("POST /api/recommend", s.apiRecommendImage)
	s.mux.HandleFunc("/api/", s.apiNotFound)
	s.mux.HandleFunc("GET /thumb/{id...}", s.thumb)
	s.mux.HandleFunc("GET /{$}", s.scorePage)
	s.mux.HandleFunc("GET /recommend", s.recommendPage)
	s.mux.Handle("GET /static/", staticHandler())
	return s
}

// httpServer returns the http.Server for s, with timeouts that bound slow
// clients: the header within 10 s, the whole request within Timeout, the
// response within 10 s more.
func (s *server) httpServer() *http.Server {
	return &http.Server{
		Handler:           s.handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       s.cfg.Timeout,
		WriteTimeout:      s.cfg.Timeout + 10*time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
}

// setModel makes m the model of every request from now on.
func (s *server) setModel(m *model) { s.model.Store(m) }

// closeModel releases the model once no request uses it any more.
func (s *server) closeModel() {
	if m := s.model.Swap(nil); m != nil {
		m.close()
	}
}

// handler is the service with its middleware: a log line per request,
// security headers, and a JSON 500 for a panic.
func (s *server) handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &recorder{ResponseWriter: w}
		h := rec.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' blob: data:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'")
		defer func() {
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler {
					panic(p)
				}
				s.log.Error("panic", "path", r.URL.Path, "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
				if rec.status == 0 {
					writeError(rec, errors.New("internal error"))
				}
			}
			level := slog.LevelInfo
			if rec.status >= 500 {
				level = slog.LevelError
			}
			attrs := []slog.Attr{
				slog.String("method", r.Method),
				slog.String("path", r.URL.Path),
				slog.Int("status", rec.statusOr200()),
				slog.Duration("duration", time.Since(start)),
				slog.Int64("bytes", rec.bytes),
				slog.String("remote", r.RemoteAddr),
			}
			if rec.errMsg != "" {
				attrs = append(attrs, slog.String("error", rec.errMsg))
			}
			s.log.LogAttrs(r.Context(), level, "request", attrs...)
		}()
		s.mux.ServeHTTP(rec, r)
	})
}

// recorder remembers a response's status and size for the log line.
type recorder struct {
	http.ResponseWriter
	status int
	bytes  int64
	errMsg string
}

func (r *recorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(p []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	n, err := r.ResponseWriter.Write(p)
	r.bytes += int64(n)
	return n, err
}

func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

func (r *recorder) statusOr200() int {
	if r.status == 0 {
		return http.StatusOK
	}
	return r.status
}

// apiError is an error with the HTTP status it is answered with.
type apiError struct {
	status     int
	msg        string
	retryAfter bool // overloaded: the client may retry in a second
}

func (e *apiError) Error() string { return e.msg }

func errorf(status int, format string, args ...any) *apiError {
	return &apiError{status: status, msg: fmt.Sprintf(format, args...)}
}

// errLoading answers requests that need the model before it is loaded.
var errLoading = &apiError{status: http.StatusServiceUnavailable, msg: "the model is still loading", retryAfter: true}

// writeError answers err as JSON {"error": "..."}: an *apiError with its
// status, a timeout with 504, anything else with 500 (its text logged, not
// sent).
func writeError(w http.ResponseWriter, err error) {
	status, msg := http.StatusInternalServerError, "internal error"
	var ae *apiError
	switch {
	case errors.As(err, &ae):
		status, msg = ae.status, ae.msg
		if ae.retryAfter {
			w.Header().Set("Retry-After", "1")
		}
	case errors.Is(err, context.DeadlineExceeded):
		status, msg = http.StatusGatewayTimeout, "the request took longer than the server's timeout"
	case errors.Is(err, context.Canceled):
		status, msg = http.StatusServiceUnavailable, "the request was cancelled"
	}
	if rec, ok := w.(*recorder); ok {
		rec.errMsg = err.Error()
	}
	writeJSON(w, status, map[string]string{"error": msg})
}

// writeJSON answers v as JSON. v is encoded before anything is written, so
// a value that cannot be encoded gives a clean 500.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		b = []byte(`{"error":"internal error: the answer cannot be encoded as JSON"}`)
		if rec, ok := w.(*recorder); ok {
			rec.errMsg = err.Error()
		}
	}
	b = append(b, '\n')
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Length", fmt.Sprint(len(b)))
	w.WriteHeader(status)
	w.Write(b)
}

func (s *server) healthz(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func (s *server) readyz(w http.ResponseWriter, r *http.Request) {
	switch {
	case s.draining.Load():
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "shutting down"})
	case s.model.Load() == nil:
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "loading"})
	default:
		writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
	}
}

// apiNotFound answers paths under /api/ that no endpoint serves, and
// endpoints asked with the wrong method.
func (s *server) apiNotFound(w http.ResponseWriter, r *http.Request) {
	allow := map[string]string{"/api/score": "POST", "/api/recommend": "GET, POST"}
	if a, ok := allow[strings.TrimSuffix(r.URL.Path, "/")]; ok {
		w.Header().Set("Allow", a)
		writeError(w, errorf(http.StatusMethodNotAllowed, "%s %s: use %s", r.Method, r.URL.Path, a))
		return
	}
	writeError(w, errorf(http.StatusNotFound, "no endpoint %s", r.URL.Path))
}

// ready returns the model, or errLoading.
func (s *server) ready() (*model, error) {
	if m := s.model.Load(); m != nil {
		return m, nil
	}
	return nil, errLoading
}

// admit reserves a place for an image request, running or waiting for a
// worker, without waiting: it fails with 503 when Workers + Queue requests
// are in progress already. The request's body is read only once admitted.
func (s *server) admit() (release func(), err error) {
	select {
	case s.admission <- struct{}{}:
		return func() { <-s.admission }, nil
	default:
		return nil, &apiError{status: http.StatusServiceUnavailable, retryAfter: true,
			msg: fmt.Sprintf("overloaded: %d requests in progress; retry later", cap(s.admission))}
	}
}

// acquire waits for a worker until ctx is done: then it fails with 503.
func (s *server) acquire(ctx context.Context) (release func(), err error) {
	select {
	case s.slots <- struct{}{}:
		return func() { <-s.slots }, nil
	case <-ctx.Done():
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return nil, &apiError{status: http.StatusServiceUnavailable, retryAfter: true,
				msg: "overloaded: no worker became free within the request timeout; retry later"}
		}
		return nil, ctx.Err()
	}
}
