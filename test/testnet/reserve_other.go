//go:build !unix

package testnet

// reserve reserves nothing where there is no flock: the free-port check
// alone decides.
func reserve(int) bool { return true }
