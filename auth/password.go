package auth

import "crypto/rand"

// passwordAlphabet leaves out characters that read alike (0/O, 1/l/I), so a
// generated password survives being read aloud or copied by hand.
const passwordAlphabet = "abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"

// GeneratePassword returns 20 characters from an unambiguous alphabet
// (about 110 bits): the password `outbound user add --generate-password`
// and the MCP tool that adds a user hand out, shown once and stored only
// as its hash.
func GeneratePassword() string {
	b := make([]byte, 20)
	rand.Read(b) // never fails: crypto/rand.Read aborts the program instead
	for i := range b {
		b[i] = passwordAlphabet[int(b[i])%len(passwordAlphabet)]
	}
	return string(b)
}
