package manifests

import (
	"testing"
)

const fuzzService = `apiVersion: v1
kind: Service
metadata: {name: web, namespace: demo}
spec:
  clusterIP: 10.96.0.10
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: http}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: web-1, namespace: demo, labels: {kubernetes.io/service-name: web}}
addressType: IPv4
ports: [{name: http, port: 8080}]
endpoints: [{addresses: [10.244.0.5], conditions: {ready: true}}]
`

// FuzzParseFile feeds manifests files as anyone with write access to the
// directory might write them: never a panic; a document accepted is
// exactly one object whose key is the document's; a rejected one carries
// its error and no object.
func FuzzParseFile(f *testing.F) {
	f.Add([]byte(fuzzService))
	f.Add([]byte(`{"apiVersion":"v1","kind":"Service","metadata":{"name":"x"},"spec":{"clusterIP":"None","ports":[{"port":1}]}}`))
	f.Add([]byte("---\n---\nkind: Service\n"))
	f.Add([]byte("apiVersion: v1\nkind: Service\nmetadata: {name: a}\nspec: {clusterIP: 10.0.0.1, ports: [{port: 70000}]}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		docs, _ := parseFile(data, func(s string) string { return s })
		for _, d := range docs {
			set := 0
			for _, ok := range []bool{d.obj.svc != nil, d.obj.slice != nil, d.obj.ign != nil} {
				if ok {
					set++
				}
			}
			switch {
			case d.err != nil && set != 0:
				t.Fatalf("document %d rejected (%v) but kept an object", d.doc, d.err)
			case d.err == nil && set != 1:
				t.Fatalf("document %d accepted with %d objects", d.doc, set)
			case d.err == nil && d.obj.key() != d.key:
				t.Fatalf("document %d: key %v, object %v", d.doc, d.key, d.obj.key())
			case d.obj.svc != nil && len(d.obj.svc.Ports) == 0:
				t.Fatalf("document %d: a Service accepted without ports", d.doc)
			case d.obj.svc != nil && d.obj.svc.Selector != nil && len(d.obj.svc.Selector.Ports) != len(d.obj.svc.Ports):
				t.Fatalf("document %d: selector ports do not match the Service's", d.doc)
			}
		}
	})
}
