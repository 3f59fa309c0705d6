package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"syscall"
	"time"
)

// errPrivateAddr is the error of a fetch the server refuses to make: to a
// loopback, private, link-local or otherwise non-public address, which
// would let a client reach what only the server can.
var errPrivateAddr = errors.New("address is not public")

// cgnat is the shared address space of carrier-grade NAT (RFC 6598),
// private in practice though netip does not call it so.
var cgnat = netip.MustParsePrefix("100.64.0.0/10")

// checkPublic is a net.Dialer Control function refusing non-public
// addresses. It sees the address after name resolution, so a name that
// resolves to a private address is refused too.
func checkPublic(network, address string, _ syscall.RawConn) error {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return err
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return err
	}
	ip = ip.Unmap()
	if !ip.IsGlobalUnicast() || ip.IsPrivate() || cgnat.Contains(ip) {
		return fmt.Errorf("%s: %w", ip, errPrivateAddr)
	}
	return nil
}

// newFetchClient returns the client that fetches image URLs: no proxy from
// the environment, at most 3 redirects (each to http or https), and, unless
// allowPrivate, public addresses only.
func newFetchClient(allowPrivate bool) *http.Client {
	d := &net.Dialer{Timeout: 10 * time.Second}
	if !allowPrivate {
		d.Control = checkPublic
	}
	return &http.Client{
		Transport: &http.Transport{
			DialContext:         d.DialContext,
			TLSHandshakeTimeout: 10 * time.Second,
			MaxIdleConns:        16,
			IdleConnTimeout:     30 * time.Second,
			ForceAttemptHTTP2:   true,
		},
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= 3 {
				return errors.New("more than 3 redirects")
			}
			if req.URL.Scheme != "http" && req.URL.Scheme != "https" {
				return fmt.Errorf("redirect to a %s URL", req.URL.Scheme)
			}
			return nil
		},
	}
}

// fetch downloads the image at raw, at most MaxUpload bytes, for the image
// field field.
func (s *server) fetch(ctx context.Context, field, raw string) ([]byte, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, errorf(http.StatusBadRequest, "image %q: %q is neither an uploaded file nor an http or https URL", field, raw)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, errorf(http.StatusBadRequest, "image %q: %v", field, err)
	}
	req.Header.Set("Accept", "image/jpeg, image/png, image/gif")
	resp, err := s.client.Do(req)
	if err != nil {
		switch {
		case ctx.Err() != nil:
			return nil, ctx.Err()
		case errors.Is(err, errPrivateAddr):
			return nil, errorf(http.StatusUnprocessableEntity, "image %q: %s: the server fetches images from public addresses only", field, u.Redacted())
		}
		return nil, errorf(http.StatusUnprocessableEntity, "image %q: could not fetch %s: %v", field, u.Redacted(), errors.Unwrap(err))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, errorf(http.StatusUnprocessableEntity, "image %q: fetching %s: %s", field, u.Redacted(), resp.Status)
	}
	tooLarge := errorf(http.StatusRequestEntityTooLarge, "image %q: %s is larger than %d bytes", field, u.Redacted(), s.cfg.MaxUpload)
	if resp.ContentLength > s.cfg.MaxUpload {
		return nil, tooLarge
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, s.cfg.MaxUpload+1))
	switch {
	case ctx.Err() != nil:
		return nil, ctx.Err()
	case err != nil:
		return nil, errorf(http.StatusUnprocessableEntity, "image %q: reading %s: %v", field, u.Redacted(), err)
	case int64(len(data)) > s.cfg.MaxUpload:
		return nil, tooLarge
	}
	return data, nil
}
