// CredentialReloader: follows the files a server's credentials come from (the TLS
// certificate chain, key and client CA; the admin token) and hands each change that
// passes the checks to the server, so certificates and tokens rotate without a
// restart (a Kubernetes Secret updated in place, cert-manager renewing a
// certificate).
//
// Every poll_interval it reads the files and compares them with what is served. A
// change is checked as a whole (ReadTlsMaterial: the certificates parse, the key
// matches; a certificate that has expired is refused too; a token file must not be
// empty) and then replaces what is served, logged as event=credentials_reloaded and
// counted. A change that fails is refused: what is served stays, and the refusal is
// logged once (event=credentials_refused, naming the file and the problem) and
// counted, until the files change again. Files replaced one at a time (a key, then
// its certificate) are refused until they match again; Secret volumes switch them in
// one step.
//
// Thread-safe. The callbacks run on the reloader's thread ("hw-credentials"); the
// destructor stops it.
#ifndef HEADWAY_SERVER_CREDENTIAL_RELOADER_H_
#define HEADWAY_SERVER_CREDENTIAL_RELOADER_H_

#include <functional>
#include <optional>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "server/server_metrics.h"
#include "server/tls.h"

namespace headway {

class CredentialReloader {
 public:
  struct Options {
    // TLS files to follow; none when TLS is off (cert_file empty).
    ServerTlsFiles tls;
    // The admin token file to follow; "" for none.
    std::string admin_token_file;
    // How often the files are read; InfiniteDuration: only when CheckNow is called.
    absl::Duration poll_interval = absl::Seconds(10);
    // Serves checked TLS material from now on; an error refuses it (nothing changed).
    std::function<absl::Status(const TlsMaterial&)> replace_tls;
    // Accepts a new admin token from now on.
    std::function<void(const std::string&)> replace_admin_token;
    ServerMetrics* metrics = nullptr;  // may be null
  };

  // `tls` (when TLS is on) and `admin_token` (when a token file is followed): what
  // the server serves with now.
  CredentialReloader(Options options, std::optional<TlsMaterial> tls,
                     std::string admin_token);
  ~CredentialReloader();

  CredentialReloader(const CredentialReloader&) = delete;
  CredentialReloader& operator=(const CredentialReloader&) = delete;

  // Reads the files once and takes up or refuses what changed.
  void CheckNow() ABSL_LOCKS_EXCLUDED(mu_);

 private:
  void CheckTlsLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void CheckAdminTokenLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Logs and counts a refusal of `credential`, once per distinct `why`.
  void RefuseLocked(const char* credential, const absl::Status& why,
                    std::string& last_refusal) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Run();

  const Options options_;
  absl::Mutex mu_;
  std::optional<TlsMaterial> tls_ ABSL_GUARDED_BY(mu_);
  std::string admin_token_ ABSL_GUARDED_BY(mu_);
  std::string last_tls_refusal_ ABSL_GUARDED_BY(mu_);
  std::string last_token_refusal_ ABSL_GUARDED_BY(mu_);
  absl::Notification stop_;
  std::thread thread_;
};

}  // namespace headway

#endif  // HEADWAY_SERVER_CREDENTIAL_RELOADER_H_
