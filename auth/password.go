package auth

import (
	"crypto/rand"
	"math/big"
)

// passwordAlphabet leaves out characters that read alike (0/O, 1/l/I), so a
// generated password survives being read aloud or copied by hand.
const passwordAlphabet = "abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"

// GeneratePassword returns 20 characters drawn uniformly from an
// unambiguous alphabet of 56 (about 116 bits): the password `outbound user
// add --generate-password` and the MCP tool that adds a user hand out,
// shown once and stored only as its hash. rand.Int draws without the bias
// a byte modulo 56 would give the first 32 characters.
func GeneratePassword() string {
	b := make([]byte, 20)
	n := big.NewInt(int64(len(passwordAlphabet)))
	for i := range b {
		k, err := rand.Int(rand.Reader, n)
		if err != nil {
			panic(err) // crypto/rand does not fail on supported systems
		}
		b[i] = passwordAlphabet[k.Int64()]
	}
	return string(b)
}
