// The listening Unix socket (see unix_socket.h).
#include "net/unix_socket.h"

#include <grp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <boost/asio/local/stream_protocol.hpp>
#include <cerrno>
#include <cstddef>
#include <cstring>
#include <string>

namespace pgcohere::net {

namespace asio = boost::asio;

std::string unix_socket_path(const std::string& dir, int port) {
  std::string name = "/.s.PGSQL." + std::to_string(port);
  if (!dir.empty() && dir[0] == '@') return std::string(1, '\0') + dir.substr(1) + name;
  return dir + name;
}

namespace {
std::string shown(const std::string& path) { return path.empty() || path[0] != '\0' ? path : "@" + path.substr(1); }

[[noreturn]] void fail(const std::string& path, const std::string& what) {
  throw std::runtime_error("unix socket " + shown(path) + ": " + what);
}

// Whether a process accepts connections on the socket at `path` right now.
bool someone_listens(const std::string& path) {
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  std::memcpy(sa.sun_path, path.data(), path.size());
  bool live = ::connect(fd, reinterpret_cast<sockaddr*>(&sa),
                        static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path.size())) == 0;
  ::close(fd);
  return live;
}
}  // namespace

void listen_unix(StreamAcceptor& acceptor, const std::string& path, const std::string& mode,
                 const std::string& group, int backlog) {
  if (path.size() >= sizeof(sockaddr_un::sun_path)) fail(path, "path too long");
  bool abstract = !path.empty() && path[0] == '\0';
  if (someone_listens(path)) throw SocketInUse("unix socket " + shown(path) + ": another process listens on it");
  if (!abstract) {
    struct stat st {};
    if (::lstat(path.c_str(), &st) == 0) {
      if (!S_ISSOCK(st.st_mode)) fail(path, "exists and is not a socket");
      if (::unlink(path.c_str()) != 0) fail(path, std::string("cannot remove the stale socket: ") + std::strerror(errno));
    }
  }
  asio::local::stream_protocol::endpoint local(path);
  asio::generic::stream_protocol::endpoint ep(local);
  boost::system::error_code ec;
  acceptor.open(ep.protocol(), ec);
  if (!ec) acceptor.bind(ep, ec);
  if (ec) fail(path, ec.message());
  if (!abstract) {
    // Permissions are set before listen(): nobody connects while they are still the umask's.
    if (::chmod(path.c_str(), static_cast<mode_t>(std::stoul(mode, nullptr, 8))) != 0)
      fail(path, std::string("chmod ") + mode + ": " + std::strerror(errno));
    if (!group.empty()) {
      errno = 0;
      struct group* g = ::getgrnam(group.c_str());
      if (!g) fail(path, "unix_socket_group: no such group '" + group + "'");
      if (::chown(path.c_str(), static_cast<uid_t>(-1), g->gr_gid) != 0)
        fail(path, "chown to group " + group + ": " + std::strerror(errno));
    }
  }
  acceptor.listen(backlog, ec);
  if (ec) fail(path, ec.message());
}

void remove_unix_socket(const std::string& path) {
  if (!path.empty() && path[0] != '\0') ::unlink(path.c_str());
}

}  // namespace pgcohere::net
