package config

import "testing"

// FuzzParse feeds CNI configurations as a runtime hands them over (stdin
// and CNI_ARGS): never a panic; an accepted one has a name, an MTU in
// range, a pin directory and at least one address range.
func FuzzParse(f *testing.F) {
	f.Add([]byte(`{"cniVersion":"1.1.0","name":"podnet","type":"hivelet-cni","mtu":1450,"ipam":{"ranges":[[{"subnet":"10.244.1.0/24"}],[{"subnet":"fd00::/120"}]]}}`), "IP=10.244.1.7")
	f.Add([]byte(`{"cniVersion":"1.0.0","name":"x","ipam":{"type":"host-local","ranges":[[{"subnet":"10.0.0.0/8"}]]},"sourceAddressCheck":false}`), "")
	f.Add([]byte(`{"name":"x","mtu":-1}`), "K8S_POD_NAME=a;IP=bogus")
	f.Fuzz(func(t *testing.T, stdin []byte, args string) {
		c, err := Parse(stdin, args)
		if err != nil {
			return
		}
		if c.Name == "" || c.MTU < 576 || c.MTU > 65535 || c.BPFFS == "" || c.IPAM == nil || len(c.IPAM.Ranges) == 0 {
			t.Fatalf("accepted %q (%q) as %+v", stdin, args, c)
		}
	})
}
