// Command nnp is the conformance suite's nonewprivs image program: a
// setuid-root binary that prints the uid it runs with, so that a test
// can see whether allowPrivilegeEscalation (no_new_privs) let the
// setuid bit raise it. Built and made setuid by hack/conformance.sh.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Printf("Effective uid: %d\n", os.Geteuid())
}
