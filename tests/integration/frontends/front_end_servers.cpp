#include "front_end_servers.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace scgi::test {
namespace {

// The pool address every example points at (deploy/examples/scgi.toml).
constexpr const char* kExamplePool = "127.0.0.1:4000";

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + path);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

std::string example(const std::string& name) {
  return read_file(std::string(SCGI_SOURCE_DIR) + "/deploy/examples/" + name);
}

std::string apply_edits(std::string text, const FrontEndSetup& setup) {
  for (const auto& [from, to] : setup.edits)
    text = replace_all(std::move(text), from, to);
  return text;
}

void require_installed(const std::string& binary, const std::string& package) {
  if (!std::filesystem::exists(binary))
    throw std::runtime_error(binary + " is missing: apt-get install " + package +
                             " (scripts/install-deps.sh test)");
}

// The site file goes in as it is, in a minimal nginx.conf of our own that
// keeps pid, logs and temp files in `dir`. `include scgi_params` is relative
// to the directory of the -c file, so Debian's file is copied next to it.
std::vector<std::string> write_nginx(const TempDir& dir, const FrontEndSetup& setup) {
  require_installed("/usr/sbin/nginx", "nginx-light");
  std::string site = example("nginx-scgi.conf");
  site = replace_all(site, "listen 80;", fmt::format("listen 127.0.0.1:{};", setup.http_port));
  site = replace_all(site, kExamplePool, setup.pool.to_string());
  dir.write("nginx-site.conf", apply_edits(site, setup));
  std::filesystem::copy_file("/etc/nginx/scgi_params", dir.file("scgi_params"));
  dir.write("nginx.conf", fmt::format(R"(worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log info;
events {{ worker_connections 256; }}
http {{
  access_log off;
  client_body_temp_path {dir}/body;
  proxy_temp_path {dir}/proxy;
  fastcgi_temp_path {dir}/fastcgi;
  uwsgi_temp_path {dir}/uwsgi;
  scgi_temp_path {dir}/scgi;
  include {dir}/nginx-site.conf;
}}
)",
                                      fmt::arg("dir", dir.path().string())));
  return {"/usr/sbin/nginx",      "-p", dir.path().string(), "-c",
          dir.file("nginx.conf"), "-g", "daemon off;"};
}

// Only the modules a2enmod would enable for the example (proxy, proxy_scgi)
// plus an MPM. Apache refuses to run its children as root (it is built
// without BIG_SECURITY_HOLE), so they run as `daemon`; they need nothing in
// `dir`, which the parent opens (logs) before it forks them.
std::vector<std::string> write_apache(const TempDir& dir, const FrontEndSetup& setup) {
  require_installed("/usr/sbin/apache2", "apache2");
  std::string site = example("apache-scgi.conf");
  site = replace_all(site, "<VirtualHost *:80>",
                     fmt::format("<VirtualHost 127.0.0.1:{}>", setup.http_port));
  site = replace_all(site, kExamplePool, setup.pool.to_string());
  dir.write("apache-site.conf", apply_edits(site, setup));
  dir.write("apache2.conf",
            fmt::format(R"(ServerRoot {dir}
ServerName localhost
DefaultRuntimeDir {dir}
PidFile {dir}/apache2.pid
ErrorLog {dir}/error.log
LogLevel info
LoadModule mpm_event_module /usr/lib/apache2/modules/mod_mpm_event.so
LoadModule authz_core_module /usr/lib/apache2/modules/mod_authz_core.so
LoadModule proxy_module /usr/lib/apache2/modules/mod_proxy.so
LoadModule proxy_scgi_module /usr/lib/apache2/modules/mod_proxy_scgi.so
User daemon
Group daemon
Listen 127.0.0.1:{port}
Include {dir}/apache-site.conf
)",
                        fmt::arg("dir", dir.path().string()), fmt::arg("port", setup.http_port)));
  return {"/usr/sbin/apache2", "-f", dir.file("apache2.conf"), "-DFOREGROUND"};
}

// The module file goes in as it is, after the few server.* settings that
// Debian's lighttpd.conf would give, pointed at `dir`.
std::vector<std::string> write_lighttpd(const TempDir& dir, const FrontEndSetup& setup) {
  require_installed("/usr/sbin/lighttpd", "lighttpd");
  std::string module = example("lighttpd-scgi.conf");
  module = replace_all(module, "\"host\" => \"127.0.0.1\"",
                       fmt::format("\"host\" => \"{}\"", setup.pool.host));
  module = replace_all(module, "\"port\" => 4000", fmt::format("\"port\" => {}", setup.pool.port));
  dir.write("lighttpd-scgi.conf", apply_edits(module, setup));
  std::filesystem::create_directory(dir.path() / "www");
  std::filesystem::create_directory(dir.path() / "uploads");
  dir.write("lighttpd.conf",
            fmt::format(R"(server.document-root = "{dir}/www"
server.bind = "127.0.0.1"
server.port = {port}
server.pid-file = "{dir}/lighttpd.pid"
server.errorlog = "{dir}/error.log"
server.upload-dirs = ( "{dir}/uploads" )
include "{dir}/lighttpd-scgi.conf"
)",
                        fmt::arg("dir", dir.path().string()), fmt::arg("port", setup.http_port)));
  return {"/usr/sbin/lighttpd", "-D", "-f", dir.file("lighttpd.conf")};
}

std::string lower(std::string text) {
  std::transform(text.begin(), text.end(), text.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return text;
}

// curl -D writes every response's head (a 100 Continue too): keep the last.
void parse_head(const std::string& text, HttpReply& reply) {
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.starts_with("HTTP/")) {
      reply.headers.clear();
      continue;
    }
    const auto colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::string value = line.substr(colon + 1);
    value.erase(0, value.find_first_not_of(' '));
    reply.headers.emplace(lower(line.substr(0, colon)), value);
  }
}

}  // namespace

std::string to_string(FrontEndKind kind) {
  switch (kind) {
    case FrontEndKind::nginx:
      return "nginx";
    case FrontEndKind::apache:
      return "apache";
    case FrontEndKind::lighttpd:
      return "lighttpd";
  }
  return "?";
}

std::string replace_all(std::string text, const std::string& from, const std::string& to) {
  std::size_t at = text.find(from);
  if (at == std::string::npos)
    throw std::runtime_error("the example no longer contains \"" + from + "\"");
  while (at != std::string::npos) {
    text.replace(at, from.size(), to);
    at = text.find(from, at + to.size());
  }
  return text;
}

FrontEnd::FrontEnd(const TempDir& dir, FrontEndKind kind, const FrontEndSetup& setup)
    : kind_(kind), http_port_(setup.http_port), error_log_path_(dir.file("error.log")) {
  std::vector<std::string> argv;
  switch (kind) {
    case FrontEndKind::nginx:
      argv = write_nginx(dir, setup);
      break;
    case FrontEndKind::apache:
      argv = write_apache(dir, setup);
      break;
    case FrontEndKind::lighttpd:
      argv = write_lighttpd(dir, setup);
      break;
  }
  process_ = Process::start(argv, dir.file(to_string(kind) + ".out"));
  if (!wait_until_accepting(loopback(http_port_), 10s))
    throw std::runtime_error(to_string(kind) + " did not start: " + process_.log() + error_log());
}

std::string FrontEnd::url(const std::string& path_and_query) const {
  return fmt::format("http://127.0.0.1:{}{}", http_port_, path_and_query);
}

std::string FrontEnd::error_log() const {
  std::ifstream in(error_log_path_);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

std::string HttpReply::header(const std::string& lower_case_name) const {
  const auto found = headers.find(lower_case_name);
  return found == headers.end() ? std::string() : found->second;
}

CurlRequest::CurlRequest(const TempDir& dir, std::vector<std::string> options,
                         const std::string& url) {
  static int requests = 0;
  stem_ = dir.file("curl-" + std::to_string(++requests));
  // --max-time bounds every request; curl's exit code is not used, as a
  // status of 0 (no answer) says the same in the assertion.
  std::vector<std::string> argv{"curl",          "-s", "-o",           stem_ + ".body", "-D",
                                stem_ + ".head", "-w", "%{http_code}", "--max-time",    "20"};
  argv.insert(argv.end(), options.begin(), options.end());
  argv.push_back(url);
  process_ = Process::start(argv, stem_ + ".out");
}

HttpReply CurlRequest::finish() {
  HttpReply reply;
  if (!process_.wait(30s)) return reply;
  std::istringstream(read_file(stem_ + ".out")) >> reply.status;
  if (std::filesystem::exists(stem_ + ".head")) parse_head(read_file(stem_ + ".head"), reply);
  if (std::filesystem::exists(stem_ + ".body")) reply.body = read_file(stem_ + ".body");
  return reply;
}

HttpReply curl(const TempDir& dir, std::vector<std::string> options, const std::string& url) {
  return CurlRequest(dir, std::move(options), url).finish();
}

}  // namespace scgi::test
