package streamguard

import (
	"go/ast"
	"go/parser"
	"go/token"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
)

// Every Reason constant declared in the package has its row in the reasons
// table: a hint and a status. The constants are read from the source, so a
// new Reason without a row fails here.
func TestEveryReasonHasARow(t *testing.T) {
	fset := token.NewFileSet()
	names, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	var declared []Reason
	for _, name := range names {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			vs, ok := n.(*ast.ValueSpec)
			if !ok {
				return true
			}
			if id, ok := vs.Type.(*ast.Ident); !ok || id.Name != "Reason" {
				return true
			}
			for _, v := range vs.Values {
				if lit, ok := v.(*ast.BasicLit); ok && lit.Kind == token.STRING {
					declared = append(declared, Reason(lit.Value[1:len(lit.Value)-1]))
				}
			}
			return true
		})
	}
	if len(declared) < 17 {
		t.Fatalf("found %d Reason constants: %v", len(declared), declared)
	}
	for _, r := range declared {
		info, ok := reasons[r]
		if !ok {
			t.Errorf("reason %s has no row", r)
			continue
		}
		if h := (&Error{Reason: r}).Hint(); h == "" || info.status < 400 || info.status > 599 {
			t.Errorf("reason %s: hint %q, status %d", r, h, info.status)
		}
		if r.Status() != info.status {
			t.Errorf("reason %s: Status() %d", r, r.Status())
		}
	}
	if len(reasons) != len(declared) {
		t.Errorf("%d rows for %d reasons", len(reasons), len(declared))
	}
	if Reason("made_up").Status() != 500 {
		t.Error("an unknown reason's status")
	}
}

// A payload_too_large hint quotes the cap in force: the one the platform's
// 413 message names, or the one the stack applied.
func TestTooLargeHintQuotesTheLimit(t *testing.T) {
	resp := &http.Response{StatusCode: 413, Header: http.Header{"Content-Type": {"application/json"}}}
	e := Classify(resp, []byte(`{"error":"payload size of 300000 bytes exceeds maximum size of 262144 bytes"}`))
	if e.Limit != 262144 || !strings.Contains(e.Hint(), "the body cap in force is 262144 bytes") {
		t.Errorf("Limit %d, hint %q", e.Limit, e.Hint())
	}
	if e := Classify(resp, []byte(`{"error":"too big"}`)); e.Limit != 0 || !strings.Contains(e.Hint(), "100 MB edge cap") {
		t.Errorf("without a limit: %d, %q", e.Limit, e.Hint())
	}
}
