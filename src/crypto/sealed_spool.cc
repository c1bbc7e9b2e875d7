#include "garde/crypto/sealed_spool.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace garde {
namespace {

constexpr size_t kChunk = 64 * 1024;
constexpr size_t kAbytes = crypto_secretstream_xchacha20poly1305_ABYTES;

// The file: each chunk as a 4-byte little-endian length, then the sealed chunk.
Status WriteAll(int fd, const unsigned char* data, size_t n, int64_t at) {
  while (n > 0) {
    const ssize_t w = ::pwrite(fd, data, n, at);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return Unavailable("cannot write the upload to disk");
    data += w;
    n -= static_cast<size_t>(w);
    at += w;
  }
  return Status::Ok();
}

Status ReadAll(int fd, unsigned char* data, size_t n, int64_t at) {
  while (n > 0) {
    const ssize_t r = ::pread(fd, data, n, at);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return Unavailable("cannot read the upload back");
    if (r == 0) return Damaged("the upload on disk is cut short");
    data += r;
    n -= static_cast<size_t>(r);
    at += r;
  }
  return Status::Ok();
}

}  // namespace

Result<std::unique_ptr<SealedSpool>> SealedSpool::Create(const std::string& dir) {
  int fd = ::open(dir.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
  if (fd < 0) {  // no O_TMPFILE here: a name, removed at once
    std::string path = dir + "/.upload-XXXXXX";
    fd = ::mkostemp(path.data(), O_CLOEXEC);
    if (fd >= 0) ::unlink(path.c_str());
  }
  if (fd < 0) return Unavailable("cannot keep the upload on disk in " + dir);
  return std::unique_ptr<SealedSpool>(new SealedSpool(fd));
}

SealedSpool::SealedSpool(int fd) : fd_(fd) {
  crypto_secretstream_xchacha20poly1305_keygen(key_);
  crypto_secretstream_xchacha20poly1305_init_push(&state_, header_, key_);
  plain_.reserve(kChunk);
}

SealedSpool::~SealedSpool() {
  sodium_memzero(key_, sizeof key_);
  sodium_memzero(&state_, sizeof state_);
  sodium_memzero(plain_.data(), plain_.size());
  if (fd_ >= 0) ::close(fd_);
}

Status SealedSpool::WriteChunk(unsigned char tag) {
  std::string sealed(4 + plain_.size() + kAbytes, '\0');
  auto* out = reinterpret_cast<unsigned char*>(sealed.data());
  const auto length = static_cast<uint32_t>(plain_.size() + kAbytes);
  for (int i = 0; i < 4; ++i) out[i] = static_cast<unsigned char>(length >> (8 * i));
  crypto_secretstream_xchacha20poly1305_push(&state_, out + 4, nullptr,
                                             reinterpret_cast<const unsigned char*>(plain_.data()),
                                             plain_.size(), nullptr, 0, tag);
  sodium_memzero(plain_.data(), plain_.size());
  plain_.clear();
  GARDE_RETURN_IF_ERROR(WriteAll(fd_, out, sealed.size(), file_end_));
  file_end_ += static_cast<int64_t>(sealed.size());
  return Status::Ok();
}

Status SealedSpool::Append(std::string_view bytes) {
  if (finished_) return Internal("the upload was already finished");
  size_ += static_cast<int64_t>(bytes.size());
  while (!bytes.empty()) {
    const size_t take = std::min(bytes.size(), kChunk - plain_.size());
    plain_.append(bytes.data(), take);
    bytes.remove_prefix(take);
    if (plain_.size() == kChunk) {
      GARDE_RETURN_IF_ERROR(WriteChunk(crypto_secretstream_xchacha20poly1305_TAG_MESSAGE));
    }
  }
  return Status::Ok();
}

Status SealedSpool::Finish() {
  if (finished_) return Status::Ok();
  GARDE_RETURN_IF_ERROR(WriteChunk(crypto_secretstream_xchacha20poly1305_TAG_FINAL));
  finished_ = true;
  return Rewind();
}

Status SealedSpool::Rewind() {
  if (!finished_) return Internal("the upload is not finished");
  if (crypto_secretstream_xchacha20poly1305_init_pull(&state_, header_, key_) != 0) {
    return Damaged("the upload's header is damaged");
  }
  sodium_memzero(plain_.data(), plain_.size());
  plain_.clear();
  plain_pos_ = 0;
  read_at_ = 0;
  final_read_ = false;
  return Status::Ok();
}

Status SealedSpool::NextChunk() {
  unsigned char prefix[4];
  GARDE_RETURN_IF_ERROR(ReadAll(fd_, prefix, sizeof prefix, read_at_));
  uint32_t length = 0;
  for (int i = 0; i < 4; ++i) length |= static_cast<uint32_t>(prefix[i]) << (8 * i);
  if (length < kAbytes || length > kChunk + kAbytes)
    return Damaged("the upload on disk is damaged");
  std::string sealed(length, '\0');
  auto* in = reinterpret_cast<unsigned char*>(sealed.data());
  GARDE_RETURN_IF_ERROR(ReadAll(fd_, in, length, read_at_ + 4));
  read_at_ += 4 + length;
  plain_.resize(length - kAbytes);
  unsigned long long n = 0;
  unsigned char tag = 0;
  if (crypto_secretstream_xchacha20poly1305_pull(&state_,
                                                 reinterpret_cast<unsigned char*>(plain_.data()),
                                                 &n, &tag, in, length, nullptr, 0) != 0) {
    plain_.clear();
    return Damaged("the upload on disk is damaged");
  }
  plain_.resize(static_cast<size_t>(n));
  plain_pos_ = 0;
  final_read_ = tag == crypto_secretstream_xchacha20poly1305_TAG_FINAL;
  return Status::Ok();
}

Result<size_t> SealedSpool::Read(char* out, size_t n) {
  if (!finished_) return Internal("the upload is not finished");
  size_t given = 0;
  while (given < n) {
    if (plain_pos_ == plain_.size()) {
      if (final_read_) break;
      GARDE_RETURN_IF_ERROR(NextChunk());
      continue;
    }
    const size_t take = std::min(n - given, plain_.size() - plain_pos_);
    std::memcpy(out + given, plain_.data() + plain_pos_, take);
    plain_pos_ += take;
    given += take;
  }
  return given;
}

}  // namespace garde
