#include "emulator/pages.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "httplib.h"

namespace tokenbroker::emulator::internal {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;

TEST(HtmlEscapeTest, EscapesTheFiveCharacters) {
  EXPECT_EQ(HtmlEscape(R"(<a href="x" title='y'>&</a>)"),
            "&lt;a href=&quot;x&quot; title=&#39;y&#39;&gt;&amp;&lt;/a&gt;");
  EXPECT_EQ(HtmlEscape("plain"), "plain");
}

TEST(PagesTest, EveryValueIsEscaped) {
  const std::string evil = "<script>alert('x')</script>\"&";
  for (const std::string& page :
       {SignInPage(evil, evil, evil), ConsentPage(evil, evil, {evil}, evil),
        ErrorPage(evil, evil)}) {
    EXPECT_THAT(page, AllOf(Not(HasSubstr("<script>")),
                            HasSubstr("&lt;script&gt;alert(&#39;x&#39;)")))
        << page;
  }
}

TEST(PagesTest, SignInErrorOnlyWhenGiven) {
  EXPECT_THAT(SignInPage("App", "t", ""), Not(HasSubstr("role=\"alert\"")));
  EXPECT_THAT(SignInPage("App", "t", kIncorrectCredentials),
              HasSubstr("<p class=\"error\" role=\"alert\">Incorrect username "
                        "or password.</p>"));
}

TEST(PagesTest, HeadersOfPagesAndRedirects) {
  httplib::Response res;
  SetPage(res, 200, "<p>x</p>");
  EXPECT_EQ(res.status, 200);
  EXPECT_EQ(res.get_header_value("Content-Type"), "text/html; charset=utf-8");
  EXPECT_EQ(res.get_header_value("Cache-Control"), "no-store");
  EXPECT_EQ(res.get_header_value("X-Frame-Options"), "DENY");
  EXPECT_EQ(res.get_header_value("Content-Security-Policy"),
            "frame-ancestors 'none'");
  EXPECT_EQ(res.get_header_value("Referrer-Policy"), "no-referrer");

  httplib::Response redirect;
  SetRedirect(redirect, "http://h/cb?code=1");
  EXPECT_EQ(redirect.status, 302);
  EXPECT_EQ(redirect.get_header_value("Location"), "http://h/cb?code=1");
  EXPECT_EQ(redirect.get_header_value("Cache-Control"), "no-store");
}

}  // namespace
}  // namespace tokenbroker::emulator::internal
