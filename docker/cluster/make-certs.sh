#!/bin/sh
# Makes the throwaway TLS files of docker-compose.cluster.yml, unless they are already there:
# a CA, and a certificate it signed for PostgreSQL's host name, with the certificate's key.
# The CA's own key is deleted once it has signed: nothing else is ever signed with it.
#
#   make-certs.sh SERVER_DIR CA_DIR
#
#   SERVER_DIR/server.crt, SERVER_DIR/server.key   for the server; the key has mode 0600, and
#                                                  both are owned by CERT_OWNER (PostgreSQL
#                                                  refuses a key file others can read)
#   CA_DIR/ca.crt                                  for the clients (sslrootcert)
#
#   CERT_HOST   the server's DNS name, in the certificate's subjectAltName (default: postgres)
#   CERT_OWNER  uid:gid of the server's files (default: 999:999, the postgres user of the
#               official postgres image)
#   CERT_DAYS   validity in days (default: 825)
#
# Needs only the openssl command (the postgres image has it). Run it again to get the same
# files back; delete them to get new ones.
set -eu

if [ $# -ne 2 ]; then
  echo "usage: $0 SERVER_DIR CA_DIR" >&2
  exit 2
fi
server_dir=$1
ca_dir=$2
host=${CERT_HOST:-postgres}
owner=${CERT_OWNER:-999:999}
days=${CERT_DAYS:-825}

if [ -s "$server_dir/server.crt" ] && [ -s "$server_dir/server.key" ] && [ -s "$ca_dir/ca.crt" ]; then
  echo "make-certs: $server_dir/server.crt, $server_dir/server.key and $ca_dir/ca.crt already exist"
  exit 0
fi

umask 077
mkdir -p "$server_dir" "$ca_dir"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

cat >"$work/openssl.cnf" <<EOF
[req]
distinguished_name = dn
prompt = no

[dn]
CN = Tollgate compose CA

[ca_ext]
basicConstraints = critical, CA:TRUE, pathlen:0
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash

[server_ext]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:$host
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
EOF

# ECDSA P-256 keys, SHA-256 signatures: accepted by PostgreSQL's OpenSSL and by the gateway's
# rustls alike.
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$work/ca.key"
openssl req -new -x509 -config "$work/openssl.cnf" -extensions ca_ext -key "$work/ca.key" \
  -sha256 -days "$days" -out "$work/ca.crt"
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$work/server.key"
openssl req -new -config "$work/openssl.cnf" -key "$work/server.key" -subj "/CN=$host" \
  -out "$work/server.csr"
openssl x509 -req -in "$work/server.csr" -CA "$work/ca.crt" -CAkey "$work/ca.key" \
  -set_serial "0x$(openssl rand -hex 16)" -sha256 -days "$days" \
  -extfile "$work/openssl.cnf" -extensions server_ext -out "$work/server.crt"
openssl verify -CAfile "$work/ca.crt" "$work/server.crt" >/dev/null

chmod 0644 "$work/ca.crt" "$work/server.crt"
chmod 0600 "$work/server.key"
chown "$owner" "$work/server.crt" "$work/server.key"
chmod 0755 "$server_dir" "$ca_dir"
# The CA certificate last: its presence, with the server's files, means "done".
mv -f "$work/server.key" "$server_dir/server.key"
mv -f "$work/server.crt" "$server_dir/server.crt"
mv -f "$work/ca.crt" "$ca_dir/ca.crt"
echo "make-certs: wrote $server_dir/server.crt and server.key (for $host, owner $owner) and $ca_dir/ca.crt"
