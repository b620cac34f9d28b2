// Package htmltest reads parsed HTML (golang.org/x/net/html) in tests: the
// status pages' tests and the browser checks of cmd/pipgate.
package htmltest

import (
	"strings"

	"golang.org/x/net/html"
)

// Text returns the concatenated text content of n.
func Text(n *html.Node) string {
	var b strings.Builder
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.TextNode {
			b.WriteString(n.Data)
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(n)
	return b.String()
}

// Count counts the elements named tag under n.
func Count(n *html.Node, tag string) int {
	c := 0
	if n.Type == html.ElementNode && n.Data == tag {
		c++
	}
	for k := n.FirstChild; k != nil; k = k.NextSibling {
		c += Count(k, tag)
	}
	return c
}

// ByID returns the element with id under n, or nil.
func ByID(n *html.Node, id string) *html.Node {
	if n.Type == html.ElementNode {
		for _, a := range n.Attr {
			if a.Key == "id" && a.Val == id {
				return n
			}
		}
	}
	for c := n.FirstChild; c != nil; c = c.NextSibling {
		if f := ByID(c, id); f != nil {
			return f
		}
	}
	return nil
}

// Hrefs returns the href of every <a> element in n, in document order.
func Hrefs(n *html.Node) []string {
	var out []string
	if n.Type == html.ElementNode && n.Data == "a" {
		for _, a := range n.Attr {
			if a.Key == "href" {
				out = append(out, a.Val)
			}
		}
	}
	for c := n.FirstChild; c != nil; c = c.NextSibling {
		out = append(out, Hrefs(c)...)
	}
	return out
}
