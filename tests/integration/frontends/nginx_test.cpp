// Debian's nginx in front of scgi-proxy, as users deploy it: HTTP in,
// `scgi_pass` to the proxy, curl as the client.
#include <catch2/catch.hpp>

#include <fmt/format.h>

#include <filesystem>
#include <fstream>

#include "../support/harness.hpp"

using namespace scgi;
using namespace scgi::test;

namespace {

constexpr const char* kNginx = "/usr/sbin/nginx";

std::string nginx_config(const TempDir& dir, std::uint16_t http_port, const Address& proxy) {
  return fmt::format(R"(user root;
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/nginx-error.log info;
events {{ worker_connections 256; }}
http {{
  access_log off;
  client_body_temp_path {dir}/body;
  proxy_temp_path {dir}/proxy;
  fastcgi_temp_path {dir}/fastcgi;
  uwsgi_temp_path {dir}/uwsgi;
  scgi_temp_path {dir}/scgi;
  client_max_body_size 64m;
  server {{
    listen 127.0.0.1:{port};
    location / {{
      include /etc/nginx/scgi_params;
      scgi_pass {proxy};
    }}
    location /bare/ {{
      scgi_pass {proxy};
    }}
  }}
}}
)",
                     fmt::arg("dir", dir.path().string()), fmt::arg("port", http_port),
                     fmt::arg("proxy", proxy.to_string()));
}

struct CurlResult {
  int http_code = 0;
  std::string body;
};

// curl ARGS... URL; the status and the body it received.
CurlResult curl(const TempDir& dir, std::vector<std::string> args, const std::string& url) {
  std::vector<std::string> argv{"curl", "-s",           "-o",         dir.file("curl-body"),
                                "-w",   "%{http_code}", "--max-time", "20"};
  argv.insert(argv.end(), args.begin(), args.end());
  argv.push_back(url);
  std::filesystem::remove(dir.file("curl-out"));
  Process process = Process::start(argv, dir.file("curl-out"));
  const auto status = process.wait(30s);
  REQUIRE(status.has_value());
  CurlResult result;
  std::ifstream out(dir.file("curl-out"));
  out >> result.http_code;
  std::ifstream body(dir.file("curl-body"), std::ios::binary);
  result.body.assign(std::istreambuf_iterator<char>(body), {});
  return result;
}

}  // namespace

TEST_CASE("nginx -> scgi-proxy -> workers: real HTTP requests get the right answers",
          "[frontend][nginx]") {
  if (!std::filesystem::exists(kNginx))
    FAIL("nginx is not installed: run scripts/install-deps.sh test");
  TempDir dir;
  SampleWorker a(dir, "a");
  SampleWorker b(dir, "b");
  const Address proxy_listen = loopback(free_port());
  ProxyProcess proxy(
      dir,
      fmt::format("[metrics]\nlisten = \"\"\n[[pool]]\nname = \"app\"\n"
                  "listen = \"{}\"\nbackends = {}\nrequest_timeout = \"1s\"\n",
                  proxy_listen.to_string(), toml_addresses({a.address(), b.address()})),
      proxy_listen);
  const std::uint16_t http_port = free_port();
  dir.write("nginx.conf", nginx_config(dir, http_port, proxy_listen));
  Process nginx = Process::start(
      {kNginx, "-p", dir.path().string(), "-c", dir.file("nginx.conf"), "-g", "daemon off;"},
      dir.file("nginx.log"));
  if (!wait_until_accepting(loopback(http_port))) FAIL("nginx did not start: " << nginx.log());
  const std::string base = fmt::format("http://127.0.0.1:{}", http_port);

  SECTION("GET") {
    const CurlResult r = curl(dir, {}, base + "/hello");
    CHECK(r.http_code == 200);
    CHECK(r.body.starts_with("hello from "));
  }
  SECTION("POST with a body, and a large upload, arrive whole") {
    const std::string body = "name=value&other=" + std::string(1000, 'x');
    const CurlResult small = curl(dir, {"--data-binary", body}, base + "/form?echo=1");
    CHECK(small.http_code == 200);
    CHECK(small.body.ends_with("," + body));  // the worker echoes header then body
    // nginx buffers the whole body first and stops reading the response while it
    // sends the body, so a worker that echoes as it reads would stall it: the
    // worker reports the length and a hash of what it received instead.
    std::string big(20'000'000, '\0');
    std::uint64_t fnv = 0xcbf29ce484222325ull;
    for (std::size_t i = 0; i < big.size(); ++i) {
      big[i] = static_cast<char>(i % 251);
      fnv = (fnv ^ static_cast<unsigned char>(big[i])) * 0x100000001b3ull;
    }
    dir.write("upload.bin", big);
    const CurlResult upload =
        curl(dir, {"--data-binary", "@" + dir.file("upload.bin")}, base + "/upload?digest=1");
    CHECK(upload.http_code == 200);
    CHECK(upload.body == fmt::format("length={} fnv1a={:016x}\n", big.size(), fnv));
  }
  SECTION("repeated headers from Debian's nginx are accepted") {
    const CurlResult r = curl(
        dir, {"-H", "Cookie: a=1", "-H", "Cookie: b=2", "-H", "X-Dup: one", "-H", "X-Dup: two"},
        base + "/cookies?echo=1");
    CHECK(r.http_code == 200);
    CHECK(r.body.find("HTTP_COOKIE") != std::string::npos);
  }
  SECTION("a worker's 404 and redirect reach the client") {
    CHECK(curl(dir, {}, base + "/missing?status=404").http_code == 404);
    CHECK(curl(dir, {}, base + "/moved?status=302").http_code == 302);
  }
  SECTION("the proxy's own 504 reaches the client") {
    CHECK(curl(dir, {}, base + "/stuck?sleep_ms=3000").http_code == 504);
  }
  SECTION("without `include scgi_params` the proxy answers 400 and says why") {
    CHECK(curl(dir, {}, base + "/bare/x").http_code == 400);
    CHECK(eventually(
        [&] { return proxy.process().log().find("include scgi_params") != std::string::npos; }));
  }
  nginx.stop();
}
