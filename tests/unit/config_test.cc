#include "garde/config/config.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

namespace garde {
namespace {

// A configuration file of the test's own, removed when the test ends.
struct ConfigFile {
  explicit ConfigFile(const std::string& text)
      : path(std::filesystem::temp_directory_path() /
             ("garde-config-" + std::to_string(::getpid()) + ".yaml")) {
    std::ofstream(path) << text;
  }
  ~ConfigFile() { std::filesystem::remove(path); }
  std::filesystem::path path;
};

TEST(Config, PrecedenceIsDefaultsThenFileThenEnvironmentThenFlags) {
  const ConfigFile file("data_dir: /from/file\nlisten: 0.0.0.0:9000\nmax_threads: 64\n");
  ::setenv("GARDE_MAX_THREADS", "32", 1);
  auto cfg = ResolveConfig({{"config", file.path.string()}, {"listen", "127.0.0.1:7000"}});
  ::unsetenv("GARDE_MAX_THREADS");
  ASSERT_TRUE(cfg.ok()) << cfg.status().message();
  EXPECT_EQ(cfg->data_dir, "/from/file");
  EXPECT_EQ(cfg->listen_port, 7000);  // flag beats file
  EXPECT_EQ(cfg->max_threads, 32);    // environment beats file
  EXPECT_EQ(cfg->max_queued, 256);    // default
}

TEST(Config, BadSettingsAreRefusedWithTheirName) {
  const std::map<std::string, std::string> bad[] = {
      {{"data-dir", "/d"}, {"listen", "nowhere"}},
      {{"data-dir", "/d"}, {"max-threads", "lots"}},
      {{"data-dir", "/d"}, {"max-threads", "1"}},
      {{"data-dir", "/d"}, {"durable", "maybe"}},
      {{"data-dir", "/d"}, {"log-level", "loud"}},
      {{"listen", "127.0.0.1:1"}},  // no data dir
      {{"data-dir", "/d"}, {"trusted-proxies", "127.0.0.1,haproxy.local"}},
      {{"data-dir", "/d"}, {"db-writer-cache-mib", "-1"}},
  };
  for (const auto& flags : bad) {
    auto cfg = ResolveConfig(flags);
    ASSERT_FALSE(cfg.ok());
    ASSERT_FALSE(cfg.status().errors().empty());
  }
}

TEST(Config, TheWritersPageCacheIsChosenByTheCommandUnlessSet) {
  auto automatic = ResolveConfig({{"data-dir", "/d"}});
  ASSERT_TRUE(automatic.ok());
  EXPECT_EQ(automatic->db_writer_cache_mib, 0);  // garde serve 16, garde import 256
  ::setenv("GARDE_DB_WRITER_CACHE_MIB", "64", 1);
  auto set = ResolveConfig({{"data-dir", "/d"}});
  ::unsetenv("GARDE_DB_WRITER_CACHE_MIB");
  ASSERT_TRUE(set.ok());
  EXPECT_EQ(set->db_writer_cache_mib, 64);
}

TEST(Config, TrustedProxiesAreKeptInCanonicalForm) {
  auto cfg = ResolveConfig({{"data-dir", "/d"}, {"trusted-proxies", " 10.0.0.1, 2001:DB8:0::1 ,"}});
  ASSERT_TRUE(cfg.ok()) << cfg.status().message();
  EXPECT_EQ(cfg->trusted_proxies, (std::vector<std::string>{"10.0.0.1", "2001:db8::1"}));
}

TEST(Config, UnknownConfigFileKeyIsRefused) {
  const ConfigFile file("data_dir: /d\nlisten_adress: 1.2.3.4:5\n");
  auto cfg = ResolveConfig({{"config", file.path.string()}});
  ASSERT_FALSE(cfg.ok());
  EXPECT_NE(cfg.status().message().find("listen_adress"), std::string::npos);
}

}  // namespace
}  // namespace garde
