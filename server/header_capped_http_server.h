// HeaderCappedHttpServer and HeaderCappedHttpsServer: cpp-httplib's HTTP and HTTPS
// servers with a bound on each request's header bytes. Debian's cpp-httplib 0.11
// bounds each header line (8 KB) but not how many lines a request sends, and its read
// timeout applies to each read: a client could send headers until the server ran out
// of memory. These servers read their connections through a stream that fails a
// request whose headers (request line included, up to the blank line) pass
// `max_header_bytes`; the library then answers 400 and closes the connection. Bodies
// are not counted here.
//
// They run the library's keep-alive loop themselves (the library's is internal): up
// to the keep-alive count of requests per connection, each awaited for at most the
// keep-alive timeout, ending early once the server stops. The HTTPS server also runs
// the TLS handshake (bounded by the read timeout) on the library's SSL_CTX, so its
// certificate, key and client-CA checks are the library's; the connection's socket
// stays non-blocking, and every TLS read and write waits at most its timeout.
// Everything else (routing, handlers, timeouts, limits) is the library's.
//
// Thread-safe as httplib::Server is.
#ifndef HEADWAY_SERVER_HEADER_CAPPED_HTTP_SERVER_H_
#define HEADWAY_SERVER_HEADER_CAPPED_HTTP_SERVER_H_

#include <httplib.h>

#include <cstddef>

namespace headway {

class HeaderCappedHttpServer : public httplib::Server {
 public:
  explicit HeaderCappedHttpServer(size_t max_header_bytes)
      : max_header_bytes_(max_header_bytes) {}

 private:
  bool process_and_close_socket(socket_t sock) override;

  const size_t max_header_bytes_;
};

class HeaderCappedHttpsServer : public httplib::SSLServer {
 public:
  // As httplib::SSLServer's: PEM files; `client_ca_file` (nullable) asks every client
  // for a certificate that CA signed.
  HeaderCappedHttpsServer(size_t max_header_bytes, const char* cert_file,
                          const char* key_file, const char* client_ca_file)
      : httplib::SSLServer(cert_file, key_file, client_ca_file),
        max_header_bytes_(max_header_bytes) {}

 private:
  bool process_and_close_socket(socket_t sock) override;

  const size_t max_header_bytes_;
};

}  // namespace headway

#endif  // HEADWAY_SERVER_HEADER_CAPPED_HTTP_SERVER_H_
