package upstream

import (
	"net/http"
	"sync"
	"time"
)

// basicAuth adds HTTP basic-auth credentials to requests for one origin
// only. It sits under the http.Client, so it sees every hop of a redirect
// chain as its own request: a hop that leaves the origin (another host, a
// subdomain, another port or scheme) goes without credentials, unlike
// net/http's own rule, which keeps them for subdomains.
type basicAuth struct {
	next       http.RoundTripper
	origin     origin
	user, pass string
}

func (b *basicAuth) RoundTrip(req *http.Request) (*http.Response, error) {
	r := req.Clone(req.Context())
	if originOf(req.URL) == b.origin {
		r.SetBasicAuth(b.user, b.pass)
	} else {
		r.Header.Del("Authorization")
	}
	return b.next.RoundTrip(r)
}

// AuthFailure is the last 401 or 403 an upstream answered, kept until the
// next successful answer.
type AuthFailure struct {
	// Code is the HTTP status code, 401 or 403.
	Code int
	// URL is the URL that was refused (never with credentials).
	URL string
	// At is when it happened.
	At time.Time
}

// authState remembers the last authentication failure.
type authState struct {
	mu   sync.Mutex
	last *AuthFailure
}

func (a *authState) fail(code int, url string, at time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.last = &AuthFailure{Code: code, URL: url, At: at}
}

func (a *authState) ok() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.last = nil
}

func (a *authState) get() *AuthFailure {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.last == nil {
		return nil
	}
	f := *a.last
	return &f
}

// Info describes an upstream for status pages and health checks. It holds
// no credentials.
type Info struct {
	// Name is the configured name.
	Name string `json:"name"`
	// URL is the base URL.
	URL string `json:"url"`
	// Projects are the project-name patterns it owns; empty: it serves the
	// names no other upstream owns (when it is the first such upstream).
	Projects []string `json:"projects,omitempty"`
	// Default is true for the upstream that serves unowned names.
	Default bool `json:"default"`
	// Auth is true when credentials are configured (never the credentials).
	Auth bool `json:"auth"`
	// AuthFailure is the last 401/403 since the last success; nil: none.
	AuthFailure *AuthFailure `json:"auth_failure,omitempty"`
	// Health is its record of answers: last success, last failure and why.
	Health Health `json:"health"`
}

// Info describes the client (Default and Projects are the router's to set).
func (c *Client) Info() Info {
	return Info{Name: c.name, URL: c.base.String(), Auth: c.auth, AuthFailure: c.authState.get(), Health: c.health.get()}
}
