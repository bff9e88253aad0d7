#include "service/http/oauth_pages.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace tokenbroker {
namespace {

using ::testing::Contains;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::Pair;

TEST(HtmlEscapeTest, EscapesMarkupAndQuotes) {
  EXPECT_EQ(HtmlEscape("plain text, ok"), "plain text, ok");
  EXPECT_EQ(HtmlEscape("<script>alert(1)</script>"),
            "&lt;script&gt;alert(1)&lt;/script&gt;");
  EXPECT_EQ(HtmlEscape(R"(" onmouseover="x' ')"),
            "&quot; onmouseover=&quot;x&#39; &#39;");
  EXPECT_EQ(HtmlEscape("&lt; stays literal"), "&amp;lt; stays literal");
  EXPECT_EQ(HtmlEscape("</title><img src=x onerror=y>"),
            "&lt;/title&gt;&lt;img src=x onerror=y&gt;");
}

TEST(HtmlEscapeTest, ControlCharactersBecomeReplacement) {
  EXPECT_EQ(HtmlEscape(std::string("a\0b", 3)), "a&#xFFFD;b");
  EXPECT_EQ(HtmlEscape("a\x1b[31mb\x7f"), "a&#xFFFD;[31mb&#xFFFD;");
  EXPECT_EQ(HtmlEscape("tab\tnew\nline\r"), "tab\tnew\nline\r");
  // UTF-8 passes through (the page declares charset=utf-8).
  EXPECT_EQ(HtmlEscape("Zoë ✓"), "Zoë ✓");
}

TEST(RenderPageTest, EveryValueIsEscaped) {
  PageText text;
  text.title = "<b>title</b>";
  text.paragraphs = {"a <i>paragraph</i>"};
  text.items = {"scope:<x>"};
  text.after = {"\"after\""};
  PageResponse page = RenderPage(403, text);
  EXPECT_EQ(page.status, 403);
  EXPECT_THAT(page.body, Not(HasSubstr("<b>")));
  EXPECT_THAT(page.body, Not(HasSubstr("<i>")));
  EXPECT_THAT(page.body, Not(HasSubstr("<x>")));
  EXPECT_THAT(page.body, HasSubstr("<title>&lt;b&gt;title&lt;/b&gt; - "));
  EXPECT_THAT(page.body, HasSubstr("<h1>&lt;b&gt;title&lt;/b&gt;</h1>"));
  EXPECT_THAT(page.body, HasSubstr("<li>scope:&lt;x&gt;</li>"));
  EXPECT_THAT(page.body, HasSubstr("<p>&quot;after&quot;</p>"));
  EXPECT_THAT(page.headers,
              Contains(Pair("Content-Type", "text/html; charset=utf-8")));
}

TEST(RenderPageTest, CarriesTheSecurityHeaders) {
  for (const PageResponse& page :
       {RenderPage(200, PageText{"t", {}, {}, {}}),
        RedirectPage("https://as.example/authorize?x=1")}) {
    EXPECT_THAT(page.headers, Contains(Pair("Cache-Control", "no-store")));
    EXPECT_THAT(page.headers, Contains(Pair("Pragma", "no-cache")));
    EXPECT_THAT(page.headers, Contains(Pair("Referrer-Policy", "no-referrer")));
    EXPECT_THAT(page.headers,
                Contains(Pair("X-Content-Type-Options", "nosniff")));
    EXPECT_THAT(page.headers, Contains(Pair("X-Frame-Options", "DENY")));
    EXPECT_THAT(page.headers,
                Contains(Pair("Content-Security-Policy",
                              "default-src 'none'; style-src 'unsafe-inline'; "
                              "frame-ancestors 'none'; form-action 'none'")));
  }
  PageResponse redirect = RedirectPage("https://as.example/authorize?x=1");
  EXPECT_EQ(redirect.status, 302);
  EXPECT_THAT(redirect.headers,
              Contains(Pair("Location", "https://as.example/authorize?x=1")));
}

}  // namespace
}  // namespace tokenbroker
