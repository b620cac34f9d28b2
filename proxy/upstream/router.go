package upstream

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/pipgate/pipgate/pypi"
)

// Route is one upstream of a [Router] and the project names it owns.
type Route struct {
	// Client fetches from the upstream. Required.
	Client *Client
	// Projects are the project names this upstream owns: PEP 503 names or
	// globs of them (*, ?, [...]), matched after normalisation. Empty: the
	// upstream owns no names, and the first such route serves every name
	// that no route owns.
	Projects []string
}

// RouterOptions configure a [Router].
type RouterOptions struct {
	// Routes are the upstreams in configuration order; at least one.
	// Names must be distinct.
	Routes []Route
}

// Router sends each project to exactly one upstream: the first route whose
// Projects match the normalised name, else the first route without
// Projects (the default). An owned name is never looked up anywhere else,
// even when its owner does not have it. Files, metadata and provenance of
// a project are fetched through its owner only, under that owner's host
// checks ([Client.CheckURL]) and credentials. It is safe for concurrent use.
type Router struct {
	routes []route
	def    int // index of the default route; -1: unowned names are not found
}

type route struct {
	c        *Client
	projects []string
	globs    []pypi.NamePattern
}

// NewRouter checks opts and returns a router.
func NewRouter(opts RouterOptions) (*Router, error) {
	if len(opts.Routes) == 0 {
		return nil, errors.New("upstream: RouterOptions.Routes: want at least one route")
	}
	r := &Router{def: -1}
	seen := map[string]bool{}
	var errs []error
	for i, rt := range opts.Routes {
		if rt.Client == nil {
			errs = append(errs, fmt.Errorf("upstream: RouterOptions.Routes[%d].Client is required", i))
			continue
		}
		if seen[rt.Client.name] {
			errs = append(errs, fmt.Errorf("upstream: RouterOptions.Routes[%d]: name %q used twice", i, rt.Client.name))
		}
		seen[rt.Client.name] = true
		x := route{c: rt.Client, projects: append([]string(nil), rt.Projects...)}
		for j, p := range rt.Projects {
			g, err := pypi.ParseNamePattern(p)
			if err != nil {
				errs = append(errs, fmt.Errorf("upstream: RouterOptions.Routes[%d].Projects[%d] %q: %w", i, j, p, err))
				continue
			}
			x.globs = append(x.globs, g)
		}
		if len(rt.Projects) == 0 && r.def < 0 {
			r.def = len(r.routes)
		}
		r.routes = append(r.routes, x)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return r, nil
}

// owner returns the route serving the normalised name, or nil.
func (r *Router) owner(name string) *route {
	for i := range r.routes {
		for _, g := range r.routes[i].globs {
			if g.Match(name) {
				return &r.routes[i]
			}
		}
	}
	if r.def < 0 {
		return nil
	}
	return &r.routes[r.def]
}

// Owner returns the name of the upstream serving project (any spelling)
// and its IndexTTL; name is "" when no upstream serves it.
func (r *Router) Owner(project string) (name string, indexTTL time.Duration) {
	if o := r.owner(pypi.NormalizeName(project)); o != nil {
		return o.c.name, o.c.indexTTL
	}
	return "", 0
}

// notOwned is the error for a name no upstream serves.
func notOwned(name string) error {
	return fmt.Errorf("project %q: no upstream serves it: %w", name, ErrNotFound)
}

// Project fetches the page of project from its owner only. A name no
// upstream serves is [ErrNotFound] without a request.
func (r *Router) Project(ctx context.Context, project string) (*pypi.ProjectPage, error) {
	o := r.owner(pypi.NormalizeName(project))
	if o == nil {
		return nil, notOwned(project)
	}
	return o.c.Project(ctx, project)
}

// ProjectList returns the union of the upstreams' lists, each name taken
// only from the upstream that owns it; with several upstreams it is sorted
// by normalised name and carries no serial. If any upstream fails, so does
// the list (a partial list would hide projects).
func (r *Router) ProjectList(ctx context.Context) (*pypi.ProjectList, error) {
	out := &pypi.ProjectList{}
	seen := map[string]bool{}
	lists := 0
	for i := range r.routes {
		rt := &r.routes[i]
		if len(rt.globs) == 0 && i != r.def {
			continue // owns nothing: names it lists are served elsewhere
		}
		l, err := rt.c.ProjectList(ctx)
		if err != nil {
			return nil, err
		}
		lists++
		if lists == 1 {
			out.APIVersion, out.LastSerial = l.APIVersion, l.LastSerial
		} else {
			out.LastSerial = 0
		}
		for _, p := range l.Projects {
			n := pypi.NormalizeName(p.Name)
			if seen[n] || r.owner(n) != rt {
				continue
			}
			seen[n] = true
			out.Projects = append(out.Projects, p)
		}
	}
	if lists > 1 {
		slices.SortFunc(out.Projects, func(a, b pypi.ProjectEntry) int {
			return strings.Compare(pypi.NormalizeName(a.Name), pypi.NormalizeName(b.Name))
		})
	}
	return out, nil
}

// Open opens a file or .metadata of project through its owner.
func (r *Router) Open(ctx context.Context, project, rawURL string, kind Kind) (*Body, error) {
	o := r.owner(pypi.NormalizeName(project))
	if o == nil {
		return nil, notOwned(project)
	}
	return o.c.Open(ctx, rawURL, kind)
}

// Provenance fetches a provenance object of project through its owner.
func (r *Router) Provenance(ctx context.Context, project, rawURL string) ([]byte, error) {
	o := r.owner(pypi.NormalizeName(project))
	if o == nil {
		return nil, notOwned(project)
	}
	return o.c.Provenance(ctx, rawURL)
}

// Upstreams describes every upstream in configuration order.
func (r *Router) Upstreams() []Info {
	out := make([]Info, 0, len(r.routes))
	for i := range r.routes {
		in := r.routes[i].c.Info()
		in.Projects = append([]string(nil), r.routes[i].projects...)
		in.Default = i == r.def
		out = append(out, in)
	}
	return out
}

// Single returns the router of one upstream that serves every name.
func Single(c *Client) *Router {
	return &Router{routes: []route{{c: c}}, def: 0}
}
