#!/bin/sh
# Regenerates the PEM fixtures of cmd/danectl/tlsa_test.go with openssl.
# Afterwards refresh the golden files: go test ./cmd/danectl -run TestTLSAGolden -update
# Keys here are test fixtures only; never use them for anything else.
set -eu
cd "$(dirname "$0")"
days=36500
t=$(mktemp -d)
trap 'rm -rf "$t"' EXIT

cat > "$t/ext.cnf" <<'EOC'
[ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
[leaf]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = DNS:mail.example.com
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
EOC

# Root and intermediate CAs (ECDSA P-256, PKCS #8 keys).
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$t/root.key"
openssl req -new -x509 -key "$t/root.key" -subj "/O=danehook test/CN=danehook Test Root" -days $days \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" -out root.pem
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$t/int.key"
openssl req -new -key "$t/int.key" -subj "/O=danehook test/CN=danehook Test Intermediate" -out "$t/int.csr"
openssl x509 -req -in "$t/int.csr" -CA root.pem -CAkey "$t/root.key" -CAserial "$t/serial" -CAcreateserial -days $days \
  -extfile "$t/ext.cnf" -extensions ca -out chain.pem

# Server keys in every encoding Postfix reads.
openssl ecparam -name prime256v1 -genkey -out ec-sec1.pem           # EC PARAMETERS + EC PRIVATE KEY (SEC 1)
openssl genrsa -traditional -out rsa-pkcs1.pem 2048                 # RSA PRIVATE KEY (PKCS #1)
openssl genpkey -algorithm ED25519 -out ed25519.pem                 # PRIVATE KEY (PKCS #8)
openssl pkey -in ec-sec1.pem -out ec-pkcs8.pem                      # the EC key again as PKCS #8
openssl pkey -in rsa-pkcs1.pem -pubout -out rsa-pub.pem             # PUBLIC KEY
openssl req -new -key ed25519.pem -subj "/CN=mail.example.com" -out ed25519.csr

# Leaf certificates for the EC and RSA keys, issued by the intermediate.
for k in ec-sec1 rsa-pkcs1; do
  openssl req -new -key $k.pem -subj "/CN=mail.example.com" -out "$t/$k.csr"
  openssl x509 -req -in "$t/$k.csr" -CA chain.pem -CAkey "$t/int.key" -CAserial "$t/serial" -CAcreateserial -days $days \
    -extfile "$t/ext.cnf" -extensions leaf -out "$t/$k.crt"
done
cp "$t/ec-sec1.crt" cert.pem
cat cert.pem chain.pem > fullchain.pem
cat ec-pkcs8.pem cert.pem chain.pem > combined.pem                  # Postfix smtpd_tls_chain_files
cat rsa-pkcs1.pem "$t/rsa-pkcs1.crt" chain.pem > combined-rsa.pem
cat chain.pem cert.pem > reversed.pem                               # order must not matter
cat rsa-pkcs1.pem cert.pem > mismatch.pem                           # key of another certificate
