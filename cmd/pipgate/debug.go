package main

import (
	"net/http"
	"net/http/pprof"
)

// pprofHandler serves the runtime profiles (net/http/pprof) on the opt-in
// --debug.pprof-listen address, never on the index listener: a profile shows
// request paths and timings, so keep that address on loopback.
func pprofHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}
