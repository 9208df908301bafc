// Replays fuzz inputs without libFuzzer (the g++ test build): every file of
// the folders (or the files) named on the command line goes once through
// LLVMFuzzerTestOneInput, so the committed corpus is a regression suite.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <system_error>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size);

namespace fs = std::filesystem;

namespace {

// The inputs named by the arguments, sorted so that runs are reproducible;
// false when an argument names nothing.
bool collect_inputs(int argc, char** argv, std::vector<fs::path>& inputs) {
  for (int i = 1; i < argc; ++i) {
    const fs::path arg = argv[i];
    std::error_code error;
    if (fs::is_directory(arg, error)) {
      for (const auto& entry : fs::directory_iterator(arg))
        if (entry.is_regular_file()) inputs.push_back(entry.path());
    } else if (fs::is_regular_file(arg, error)) {
      inputs.push_back(arg);
    } else {
      std::cerr << arg.string() << ": no such file or folder\n";
      return false;
    }
  }
  std::sort(inputs.begin(), inputs.end());
  return true;
}

// The whole file in a buffer of exactly its size, so that a sanitizer build
// sees a read past the input's end, as under libFuzzer.
bool read_input(const fs::path& path, std::unique_ptr<std::uint8_t[]>& bytes, std::size_t& size) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) return false;
  size = static_cast<std::size_t>(in.tellg());
  bytes = std::make_unique<std::uint8_t[]>(size);
  in.seekg(0);
  return static_cast<bool>(
      in.read(reinterpret_cast<char*>(bytes.get()), static_cast<std::streamsize>(size)));
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::cerr << "usage: " << argv[0] << " CORPUS_FOLDER_OR_FILE...\n";
    return 2;
  }
  std::vector<fs::path> inputs;
  if (!collect_inputs(argc, argv, inputs)) return 2;
  // An empty corpus would pass without testing anything.
  if (inputs.empty()) {
    std::cerr << "no inputs found\n";
    return 1;
  }
  for (const fs::path& path : inputs) {
    std::unique_ptr<std::uint8_t[]> bytes;
    std::size_t size = 0;
    if (!read_input(path, bytes, size)) {
      std::cerr << path.string() << ": cannot read\n";
      return 1;
    }
    // Flushed before the run: when an input aborts, the last line names it.
    std::cout << path.string() << " (" << size << " bytes)" << std::endl;
    LLVMFuzzerTestOneInput(bytes.get(), size);
  }
  std::cout << "replayed " << inputs.size() << " inputs\n";
  return 0;
}
