#ifndef TOKENBROKER_SERVICE_UPSTREAM_CURL_WRAPPERS_H_
#define TOKENBROKER_SERVICE_UPSTREAM_CURL_WRAPPERS_H_

#include <curl/curl.h>

#include <memory>

// Owning smart pointers for libcurl's C handles, as in google-cloud-cpp's
// `google/cloud/internal/curl_wrappers.h`: every handle the broker creates is
// freed by exactly one destructor, on every path.

namespace tokenbroker {
namespace internal {

struct CurlEasyDeleter {
  void operator()(CURL* easy) const { curl_easy_cleanup(easy); }
};
struct CurlMultiDeleter {
  void operator()(CURLM* multi) const { curl_multi_cleanup(multi); }
};
struct CurlSlistDeleter {
  void operator()(curl_slist* list) const { curl_slist_free_all(list); }
};
struct CurlUrlDeleter {
  void operator()(CURLU* url) const { curl_url_cleanup(url); }
};
struct CurlStringDeleter {
  void operator()(char* text) const { curl_free(text); }
};

using CurlEasyPtr = std::unique_ptr<CURL, CurlEasyDeleter>;
using CurlMultiPtr = std::unique_ptr<CURLM, CurlMultiDeleter>;
using CurlSlistPtr = std::unique_ptr<curl_slist, CurlSlistDeleter>;
using CurlUrlPtr = std::unique_ptr<CURLU, CurlUrlDeleter>;
// A string libcurl allocated (curl_url_get(), curl_easy_escape(), ...).
using CurlStringPtr = std::unique_ptr<char, CurlStringDeleter>;

// Appends a copy of `line` to `list`. Returns false, leaving `list` as it
// was, if libcurl cannot allocate.
inline bool CurlSlistAppend(CurlSlistPtr& list, const char* line) {
  curl_slist* appended = curl_slist_append(list.get(), line);
  if (appended == nullptr) return false;
  // curl_slist_append returns the head of the same list (or a new one if
  // `list` was empty): ownership stays in one place.
  (void)list.release();
  list.reset(appended);
  return true;
}

}  // namespace internal
}  // namespace tokenbroker

#endif  // TOKENBROKER_SERVICE_UPSTREAM_CURL_WRAPPERS_H_
