// DKIM in tests: a fresh RSA key pair (OpenSSL), and verification of a signed message with
// libopendkim's own verifier, the public key served from a key file (DKIM_QUERY_FILE) instead
// of DNS.
#pragma once

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include <fstream>
#include <string>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "channels/opendkim.h"

namespace ecrm::broadcast::testing {

struct RsaKeyPair {
  std::string private_pem;
  std::string public_base64;  // SubjectPublicKeyInfo, DER, base64: the p= of the DNS record
};

inline RsaKeyPair NewRsaKeyPair(int bits = 2048) {
  RsaKeyPair out;
  EVP_PKEY* key = EVP_RSA_gen(static_cast<unsigned>(bits));
  BIO* bio = BIO_new(BIO_s_mem());
  PEM_write_bio_PrivateKey(bio, key, nullptr, nullptr, 0, nullptr, nullptr);
  char* data = nullptr;
  long len = BIO_get_mem_data(bio, &data);
  out.private_pem.assign(data, static_cast<size_t>(len));
  BIO_free(bio);
  unsigned char* der = nullptr;
  int der_len = i2d_PUBKEY(key, &der);
  out.public_base64 = absl::Base64Escape(absl::string_view(reinterpret_cast<char*>(der), static_cast<size_t>(der_len)));
  OPENSSL_free(der);
  EVP_PKEY_free(key);
  return out;
}

struct DkimVerdict {
  bool passed = false;
  std::string status;          // dkim_eom's result
  std::string signed_headers;  // the h= tag
  std::string domain;
  std::string selector;
};

// Verifies `message` (CRLF) with the public key published at <selector>._domainkey.<domain> in
// `key_file` (written here).
inline DkimVerdict VerifyDkim(absl::string_view message, const std::string& key_file, const std::string& selector,
                              const std::string& domain, const std::string& public_base64) {
  {
    std::ofstream out(key_file);
    out << selector << "._domainkey." << domain << " v=DKIM1; k=rsa; p=" << public_base64 << "\n";
  }
  DkimVerdict v;
  DKIM_LIB* lib = dkim_init(nullptr, nullptr);
  dkim_query_t method = DKIM_QUERY_FILE;
  dkim_options(lib, DKIM_OP_SETOPT, DKIM_OPTS_QUERYMETHOD, &method, sizeof(method));
  dkim_options(lib, DKIM_OP_SETOPT, DKIM_OPTS_QUERYINFO, const_cast<char*>(key_file.c_str()), key_file.size());
  DKIM_STAT stat = DKIM_STAT_OK;
  DKIM* dkim = dkim_verify(lib, reinterpret_cast<const unsigned char*>("test"), nullptr, &stat);
  size_t split = message.find("\r\n\r\n");
  absl::string_view headers = message.substr(0, split + 2);
  size_t pos = 0;
  while (pos < headers.size()) {
    size_t end = pos;
    do {
      end = headers.find("\r\n", end);
      end = end == absl::string_view::npos ? headers.size() : end + 2;
    } while (end < headers.size() && (headers[end] == ' ' || headers[end] == '\t'));
    std::string field(headers.substr(pos, end - pos));
    if (field.size() >= 2 && field.substr(field.size() - 2) == "\r\n") field.resize(field.size() - 2);
    dkim_header(dkim, reinterpret_cast<u_char*>(field.data()), field.size());
    pos = end;
  }
  dkim_eoh(dkim);
  std::string body(message.substr(split + 4));
  dkim_body(dkim, reinterpret_cast<u_char*>(body.data()), body.size());
  stat = dkim_eom(dkim, nullptr);
  v.status = dkim_getresultstr(stat);
  if (DKIM_SIGINFO* sig = dkim_getsignature(dkim)) {
    v.passed = stat == DKIM_STAT_OK && DKIM_SIG_CHECK(sig);
    if (u_char* h = dkim_sig_gettagvalue(sig, false, reinterpret_cast<u_char*>(const_cast<char*>("h")))) {
      v.signed_headers = reinterpret_cast<char*>(h);
    }
    if (u_char* d = dkim_sig_getdomain(sig)) v.domain = reinterpret_cast<char*>(d);
    if (u_char* s = dkim_sig_getselector(sig)) v.selector = reinterpret_cast<char*>(s);
  }
  dkim_free(dkim);
  dkim_close(lib);
  return v;
}

}  // namespace ecrm::broadcast::testing
