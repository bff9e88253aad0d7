#include "service/upstream/curl_http_client.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "httplib.h"
#include "tests/testing/status_matchers.h"

namespace tokenbroker {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using ::tokenbroker::testing::IsOk;
using ::tokenbroker::testing::StatusIs;

constexpr const char* kProxyVariables[] = {
    "http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY",
    "all_proxy",  "ALL_PROXY",  "no_proxy",    "NO_PROXY"};

// Clears the proxy variables for the test's duration so that the machine's
// settings cannot reroute loopback requests.
class ProxyEnvironment {
 public:
  ProxyEnvironment() {
    for (const char* name : kProxyVariables) {
      const char* value = std::getenv(name);
      if (value != nullptr) saved_.emplace_back(name, value);
      unsetenv(name);
    }
  }
  ~ProxyEnvironment() {
    for (const char* name : kProxyVariables) unsetenv(name);
    for (const auto& [name, value] : saved_) {
      setenv(name.c_str(), value.c_str(), 1);
    }
  }

 private:
  std::vector<std::pair<std::string, std::string>> saved_;
};

std::vector<std::string> HeaderValues(const HttpHeaders& headers,
                                      const std::string& name) {
  std::vector<std::string> values;
  for (const auto& [key, value] : headers) {
    if (absl::EqualsIgnoreCase(key, name)) values.push_back(value);
  }
  return values;
}

// httplib's stop() is a no-op until listen_after_bind() has started: wait for
// it so that TearDown cannot hang.
void WaitUntilRunning(httplib::Server& server) {
  while (!server.is_running()) std::this_thread::yield();
}

// A TCP socket bound to a loopback port. Not listening unless Listen().
class RawSocket {
 public:
  RawSocket() {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
    socklen_t length = sizeof(addr);
    getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &length);
    port_ = ntohs(addr.sin_port);
  }
  ~RawSocket() { close(fd_); }
  int port() const { return port_; }
  void Listen() { listen(fd_, 4); }

  // Accepts one connection (a safety bound, not an assertion on timing),
  // reads the request head and answers `answer`. Returns the head.
  std::string ServeOnce(const std::string& answer) {
    pollfd p{fd_, POLLIN, 0};
    if (poll(&p, 1, 60000) != 1) return "";
    int conn = accept(fd_, nullptr, nullptr);
    std::string head;
    char buffer[1024];
    while (head.find("\r\n\r\n") == std::string::npos) {
      ssize_t n = read(conn, buffer, sizeof(buffer));
      if (n <= 0) break;
      head.append(buffer, n);
    }
    (void)!write(conn, answer.data(), answer.size());
    close(conn);
    return head;
  }

 private:
  int fd_ = -1;
  int port_ = 0;
};

class CurlHttpClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_.Get("/echo", [](const httplib::Request& req,
                            httplib::Response& res) { Echo(req, res); });
    server_.Post("/echo", [](const httplib::Request& req,
                             httplib::Response& res) { Echo(req, res); });
    server_.Put("/echo", [](const httplib::Request& req,
                            httplib::Response& res) { Echo(req, res); });
    server_.Patch("/echo", [](const httplib::Request& req,
                              httplib::Response& res) { Echo(req, res); });
    server_.Delete("/echo", [](const httplib::Request& req,
                               httplib::Response& res) { Echo(req, res); });
    server_.Get("/slow",
                [this](const httplib::Request&, httplib::Response& res) {
                  entered_.Notify();
                  release_.WaitForNotification();
                  res.set_content("late", "text/plain");
                });
    server_.Get("/big", [](const httplib::Request&, httplib::Response& res) {
      res.set_content(std::string(10000, 'b'), "text/plain");
    });
    server_.Get("/big-chunked",
                [](const httplib::Request&, httplib::Response& res) {
                  res.set_chunked_content_provider(
                      "text/plain", [](size_t offset, httplib::DataSink& sink) {
                        if (offset >= 10000) {
                          sink.done();
                        } else {
                          std::string chunk(500, 'c');
                          sink.write(chunk.data(), chunk.size());
                        }
                        return true;
                      });
                });
    server_.Get(
        "/port", [](const httplib::Request& req, httplib::Response& res) {
          res.set_content(std::to_string(req.remote_port), "text/plain");
        });
    port_ = server_.bind_to_any_port("127.0.0.1");
    ASSERT_GT(port_, 0);
    server_thread_ = std::thread([this] { server_.listen_after_bind(); });
    WaitUntilRunning(server_);
    client_ = MakeClient({});
  }

  void TearDown() override {
    client_.reset();
    if (!release_.HasBeenNotified()) release_.Notify();
    server_.stop();
    server_thread_.join();
  }

  static void Echo(const httplib::Request& req, httplib::Response& res) {
    res.set_header("X-Multi", "one");
    res.set_header("X-Multi", "two");
    res.set_header("X-Echo", req.get_header_value("X-Test"));
    res.set_content(absl::StrCat(req.method, ":", req.body), "text/plain");
  }

  static std::unique_ptr<CurlHttpClient> MakeClient(
      CurlHttpClientOptions options) {
    absl::StatusOr<std::unique_ptr<CurlHttpClient>> client =
        CurlHttpClient::Create(std::move(options));
    EXPECT_THAT(client, IsOk());
    return client.ok() ? *std::move(client) : nullptr;
  }

  std::string Url(const std::string& path) const {
    return absl::StrCat("http://127.0.0.1:", port_, path);
  }

  HttpRequest Request(const std::string& method, const std::string& path,
                      std::string body = "") const {
    HttpRequest request;
    request.method = method;
    request.url = Url(path);
    request.body = std::move(body);
    return request;
  }

  ProxyEnvironment proxy_environment_;
  httplib::Server server_;
  int port_ = 0;
  std::thread server_thread_;
  absl::Notification entered_;
  absl::Notification release_;
  std::unique_ptr<CurlHttpClient> client_;
};

struct MethodCase {
  std::string method;
  std::string body;
};

void PrintTo(const MethodCase& c, std::ostream* os) {
  *os << c.method << " with " << c.body.size() << " body bytes";
}

class CurlMethodTest : public CurlHttpClientTest,
                       public ::testing::WithParamInterface<MethodCase> {};

TEST_P(CurlMethodTest, RoundTrip) {
  const MethodCase& c = GetParam();
  HttpRequest request = Request(c.method, "/echo", c.body);
  request.headers = {{"X-Test", "hello"}, {"Content-Type", "text/plain"}};
  absl::StatusOr<HttpResponse> response =
      client_->SendAndWait(std::move(request));
  ASSERT_THAT(response, IsOk());
  EXPECT_EQ(response->status, 200);
  EXPECT_THAT(HeaderValues(response->headers, "X-Echo"), ElementsAre("hello"));
  EXPECT_THAT(HeaderValues(response->headers, "X-Multi"),
              ElementsAre("one", "two"));
  if (c.method == "HEAD") {
    EXPECT_THAT(response->body, IsEmpty());
  } else {
    EXPECT_EQ(response->body, absl::StrCat(c.method, ":", c.body));
  }
}

INSTANTIATE_TEST_SUITE_P(
    Methods, CurlMethodTest,
    ::testing::Values(MethodCase{"GET", ""}, MethodCase{"HEAD", ""},
                      MethodCase{"POST", "a=1&b=2"}, MethodCase{"POST", ""},
                      MethodCase{"PUT", "put body"},
                      MethodCase{"PATCH", "patch body"},
                      MethodCase{"DELETE", ""},
                      MethodCase{"DELETE", "delete body"},
                      MethodCase{"POST", std::string(200000, 'x')}),
    [](const ::testing::TestParamInfo<MethodCase>& info) {
      return absl::StrCat(info.param.method, info.index);
    });

TEST_F(CurlHttpClientTest, StatusIsDataNotError) {
  absl::StatusOr<HttpResponse> response =
      client_->SendAndWait(Request("GET", "/missing"));
  ASSERT_THAT(response, IsOk());
  EXPECT_EQ(response->status, 404);
}

TEST_F(CurlHttpClientTest, InvalidRequestsFailInline) {
  std::optional<absl::Status> status;
  client_->Send(Request("TRACE", "/echo"),
                [&](absl::StatusOr<HttpResponse> r) { status = r.status(); });
  ASSERT_TRUE(status.has_value());
  EXPECT_THAT(*status, StatusIs(absl::StatusCode::kInvalidArgument));

  HttpRequest request = Request("GET", "/echo");
  request.headers = {{"X-Test", "a\r\nInjected: yes"}};
  status.reset();
  client_->Send(std::move(request),
                [&](absl::StatusOr<HttpResponse> r) { status = r.status(); });
  ASSERT_TRUE(status.has_value());
  EXPECT_THAT(*status, StatusIs(absl::StatusCode::kInvalidArgument));

  request = Request("GET", "/echo");
  request.url = "ftp://127.0.0.1/file";
  EXPECT_THAT(client_->SendAndWait(std::move(request)),
              StatusIs(absl::StatusCode::kInvalidArgument));
  request.url = "not a url";
  EXPECT_THAT(client_->SendAndWait(std::move(request)),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST_F(CurlHttpClientTest, TimeoutIsDeadlineExceeded) {
  HttpRequest request = Request("GET", "/slow");
  request.timeout = absl::Milliseconds(200);
  EXPECT_THAT(
      client_->SendAndWait(std::move(request)),
      StatusIs(absl::StatusCode::kDeadlineExceeded, HasSubstr("127.0.0.1")));
}

TEST_F(CurlHttpClientTest, ConnectionRefusedIsUnavailable) {
  RawSocket not_listening;
  HttpRequest request = Request("GET", "/");
  request.url =
      absl::StrCat("http://user:pw-secret@127.0.0.1:", not_listening.port(),
                   "/path?token=qsecret");
  absl::StatusOr<HttpResponse> response =
      client_->SendAndWait(std::move(request));
  EXPECT_THAT(response,
              StatusIs(absl::StatusCode::kUnavailable, HasSubstr("127.0.0.1")));
  EXPECT_THAT(std::string(response.status().message()),
              Not(HasSubstr("secret")));
}

TEST_F(CurlHttpClientTest, TooLargeIsResourceExhausted) {
  for (const char* path : {"/big", "/big-chunked"}) {
    HttpRequest request = Request("GET", path);
    request.max_response_bytes = 1000;
    EXPECT_THAT(client_->SendAndWait(std::move(request)),
                StatusIs(absl::StatusCode::kResourceExhausted))
        << path;
    request = Request("GET", path);
    request.max_response_bytes = 10000;
    absl::StatusOr<HttpResponse> response =
        client_->SendAndWait(std::move(request));
    ASSERT_THAT(response, IsOk()) << path;
    EXPECT_EQ(response->body.size(), 10000u);
  }
}

// Collects a streamed body; refuses more after every `pause_every` pieces
// until the test resumes the transfer.
class RecordingStream final : public HttpBodyStream {
 public:
  explicit RecordingStream(int pause_every) : pause_every_(pause_every) {}

  void OnHeaders(int status, const HttpHeaders& headers) override {
    absl::MutexLock lock(&mu_);
    status_ = status;
    ++head_calls_;
    EXPECT_TRUE(body_.empty()) << "headers must come before the body";
  }

  bool OnData(absl::string_view data) override {
    absl::MutexLock lock(&mu_);
    body_.append(data.data(), data.size());
    if (pause_every_ > 0 && ++pieces_ % pause_every_ == 0) {
      ++pauses_;
      return false;
    }
    return true;
  }

  int pauses() {
    absl::MutexLock lock(&mu_);
    return pauses_;
  }
  size_t size() {
    absl::MutexLock lock(&mu_);
    return body_.size();
  }
  int status() {
    absl::MutexLock lock(&mu_);
    return status_;
  }
  int head_calls() {
    absl::MutexLock lock(&mu_);
    return head_calls_;
  }

 private:
  const int pause_every_;
  absl::Mutex mu_;
  std::string body_ ABSL_GUARDED_BY(mu_);
  int status_ ABSL_GUARDED_BY(mu_) = 0;
  int head_calls_ ABSL_GUARDED_BY(mu_) = 0;
  int pieces_ ABSL_GUARDED_BY(mu_) = 0;
  int pauses_ ABSL_GUARDED_BY(mu_) = 0;
};

TEST_F(CurlHttpClientTest, StreamsTheBodyWithPauseAndResume) {
  auto stream = std::make_shared<RecordingStream>(/*pause_every=*/1);
  HttpRequest request = Request("GET", "/big-chunked");
  request.body_stream = stream;
  absl::Notification done;
  absl::StatusOr<HttpResponse> result;
  HttpRequestId id = client_->Start(std::move(request),
                                    [&](absl::StatusOr<HttpResponse> response) {
                                      result = std::move(response);
                                      done.Notify();
                                    });
  // Resume whenever the stream has paused the transfer, until it ends.
  int resumed = 0;
  while (!done.HasBeenNotified()) {
    if (stream->pauses() > resumed) {
      ++resumed;
      client_->Resume(id);
    }
    absl::SleepFor(absl::Milliseconds(1));
  }
  ASSERT_THAT(result, IsOk());
  EXPECT_EQ(result->status, 200);
  EXPECT_TRUE(result->body.empty());
  EXPECT_EQ(stream->size(), 10000u);
  EXPECT_EQ(stream->status(), 200);
  EXPECT_EQ(stream->head_calls(), 1);
  EXPECT_GE(stream->pauses(), 1);
}

TEST_F(CurlHttpClientTest, StreamedBodyKeepsTheSizeLimit) {
  auto stream = std::make_shared<RecordingStream>(/*pause_every=*/0);
  HttpRequest request = Request("GET", "/big-chunked");
  request.body_stream = stream;
  request.max_response_bytes = 1000;
  EXPECT_THAT(client_->SendAndWait(std::move(request)),
              StatusIs(absl::StatusCode::kResourceExhausted));
  EXPECT_LE(stream->size(), 1000u);
}

TEST_F(CurlHttpClientTest, HundredConcurrentRequests) {
  constexpr int kRequests = 100;
  // Fewer connections than the server has threads: httplib holds a thread
  // per kept-alive connection.
  CurlHttpClientOptions options;
  options.max_host_connections = 4;
  client_ = MakeClient(options);
  absl::Mutex mu;
  int done = 0;
  int ok = 0;
  for (int i = 0; i < kRequests; ++i) {
    client_->Send(
        Request("POST", "/echo", std::to_string(i)),
        [&, i](absl::StatusOr<HttpResponse> response) {
          absl::MutexLock lock(&mu);
          ++done;
          if (response.ok() && response->body == absl::StrCat("POST:", i)) {
            ++ok;
          }
        });
  }
  absl::MutexLock lock(&mu);
  mu.Await(absl::Condition(
      +[](int* done) { return *done == kRequests; }, &done));
  EXPECT_EQ(ok, kRequests);
  EXPECT_EQ(client_->stats().requests_completed,
            static_cast<uint64_t>(kRequests));
}

TEST_F(CurlHttpClientTest, ReusesConnections) {
  std::vector<std::string> ports;
  for (int i = 0; i < 3; ++i) {
    absl::StatusOr<HttpResponse> response =
        client_->SendAndWait(Request("GET", "/port"));
    ASSERT_THAT(response, IsOk());
    ports.push_back(response->body);
  }
  EXPECT_THAT(ports, ElementsAre(ports[0], ports[0], ports[0]));
  CurlHttpClientStats stats = client_->stats();
  EXPECT_EQ(stats.connections_opened, 1u);
  EXPECT_EQ(stats.connections_reused, 2u);
}

TEST_F(CurlHttpClientTest, CancelCompletesWithCancelled) {
  absl::Notification done;
  absl::Status status;
  HttpRequestId id = client_->Start(Request("GET", "/slow"),
                                    [&](absl::StatusOr<HttpResponse> response) {
                                      status = response.status();
                                      done.Notify();
                                    });
  EXPECT_NE(id, kNoHttpRequestId);
  entered_.WaitForNotification();
  client_->Cancel(id);
  done.WaitForNotification();
  EXPECT_THAT(status, StatusIs(absl::StatusCode::kCancelled));
  client_->Cancel(id);  // Finished: no effect.
  client_->Cancel(12345);
  release_.Notify();
  EXPECT_THAT(client_->SendAndWait(Request("GET", "/echo")), IsOk());
}

TEST_F(CurlHttpClientTest, DestructorCancelsPending) {
  std::unique_ptr<CurlHttpClient> client = MakeClient({});
  std::vector<absl::Status> statuses;
  client->Send(Request("GET", "/slow"),
               [&](absl::StatusOr<HttpResponse> response) {
                 statuses.push_back(response.status());
               });
  entered_.WaitForNotification();
  client->Send(Request("GET", "/slow"),
               [&](absl::StatusOr<HttpResponse> response) {
                 statuses.push_back(response.status());
               });
  client.reset();
  ASSERT_EQ(statuses.size(), 2u);
  EXPECT_THAT(statuses[0], StatusIs(absl::StatusCode::kCancelled));
  EXPECT_THAT(statuses[1], StatusIs(absl::StatusCode::kCancelled));
}

TEST_F(CurlHttpClientTest, TlsToPlainPortIsUnavailable) {
  HttpRequest request = Request("GET", "/echo");
  request.url = absl::StrCat("https://127.0.0.1:", port_, "/echo");
  EXPECT_THAT(client_->SendAndWait(std::move(request)),
              StatusIs(absl::StatusCode::kUnavailable));
}

TEST_F(CurlHttpClientTest, NoProxyIsRespected) {
  RawSocket dead_proxy;  // Bound, not listening: connections are refused.
  const std::string proxy =
      absl::StrCat("http://127.0.0.1:", dead_proxy.port());
  setenv("http_proxy", proxy.c_str(), 1);
  setenv("HTTPS_PROXY", proxy.c_str(), 1);
  // The proxy is used...
  EXPECT_THAT(client_->SendAndWait(Request("GET", "/echo")),
              StatusIs(absl::StatusCode::kUnavailable));
  // ...unless NO_PROXY exempts the host.
  setenv("NO_PROXY", "127.0.0.1", 1);
  EXPECT_THAT(client_->SendAndWait(Request("GET", "/echo")), IsOk());
}

TEST_F(CurlHttpClientTest, HttpsProxyIsUsedForHttps) {
  RawSocket proxy;
  proxy.Listen();
  setenv("HTTPS_PROXY", absl::StrCat("http://127.0.0.1:", proxy.port()).c_str(),
         1);
  absl::Notification done;
  absl::Status status;
  HttpRequest request = Request("GET", "/");
  request.url = "https://broker-test.invalid/accounts/api/me";
  client_->Send(std::move(request), [&](absl::StatusOr<HttpResponse> r) {
    status = r.status();
    done.Notify();
  });
  std::string head =
      proxy.ServeOnce("HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n");
  done.WaitForNotification();
  EXPECT_THAT(head, ::testing::StartsWith(
                        "CONNECT broker-test.invalid:443 HTTP/1.1\r\n"));
  EXPECT_THAT(status, StatusIs(absl::StatusCode::kUnavailable,
                               HasSubstr("broker-test.invalid")));
}

// A self-signed certificate for "localhost" and 127.0.0.1.
struct TestCertificate {
  TestCertificate() {
    key = EVP_EC_gen("P-256");
    cert = X509_new();
    X509_set_version(cert, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(cert), 1);
    X509_gmtime_adj(X509_getm_notBefore(cert), -3600);
    X509_gmtime_adj(X509_getm_notAfter(cert), 3600);
    X509_set_pubkey(cert, key);
    X509_NAME* name = X509_get_subject_name(cert);
    X509_NAME_add_entry_by_txt(
        name, "CN", MBSTRING_ASC,
        reinterpret_cast<const unsigned char*>("localhost"), -1, -1, 0);
    X509_set_issuer_name(cert, name);
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, cert, cert, nullptr, nullptr, 0);
    for (const auto& [nid, value] :
         {std::pair<int, const char*>{NID_subject_alt_name,
                                      "DNS:localhost,IP:127.0.0.1"},
          {NID_basic_constraints, "critical,CA:TRUE"}}) {
      X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
      X509_add_ext(cert, ext, -1);
      X509_EXTENSION_free(ext);
    }
    X509_sign(cert, key, EVP_sha256());
  }
  ~TestCertificate() {
    X509_free(cert);
    EVP_PKEY_free(key);
  }
  std::string WritePem(const std::string& path) const {
    FILE* file = std::fopen(path.c_str(), "w");
    PEM_write_X509(file, cert);
    std::fclose(file);
    return path;
  }
  EVP_PKEY* key = nullptr;
  X509* cert = nullptr;
};

TEST(CurlHttpClientTlsTest, VerifiesServerCertificate) {
  ProxyEnvironment proxy_environment;
  TestCertificate certificate;
  httplib::SSLServer server(certificate.cert, certificate.key);
  ASSERT_TRUE(server.is_valid());
  server.Get("/hello", [](const httplib::Request&, httplib::Response& res) {
    res.set_content("hi", "text/plain");
  });
  const int port = server.bind_to_any_port("127.0.0.1");
  ASSERT_GT(port, 0);
  std::thread thread([&] { server.listen_after_bind(); });
  WaitUntilRunning(server);

  HttpRequest request;
  request.url = absl::StrCat("https://localhost:", port, "/hello");
  {
    absl::StatusOr<std::unique_ptr<CurlHttpClient>> client =
        CurlHttpClient::Create({});
    ASSERT_THAT(client, IsOk());
    EXPECT_THAT(
        (*client)->SendAndWait(request),
        StatusIs(absl::StatusCode::kUnavailable, HasSubstr("localhost")));
  }
  {
    CurlHttpClientOptions options;
    options.ca_file = certificate.WritePem(std::string(::testing::TempDir()) +
                                           "/curl_http_client_test_ca.pem");
    absl::StatusOr<std::unique_ptr<CurlHttpClient>> client =
        CurlHttpClient::Create(options);
    ASSERT_THAT(client, IsOk());
    absl::StatusOr<HttpResponse> response = (*client)->SendAndWait(request);
    ASSERT_THAT(response, IsOk());
    EXPECT_EQ(response->body, "hi");
    std::remove(options.ca_file.c_str());
  }
  server.stop();
  thread.join();
}

}  // namespace
}  // namespace tokenbroker
