package pypi

// PageOf is pageOf, which builds a project page of n entries, for the
// package's external tests.
var PageOf = pageOf
