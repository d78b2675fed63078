// Writes the binary seed corpora (fuzz/corpus/frame_events/ and
// fuzz/corpus/agent_frames/) with the project's own code: every wire::Event
// kind with every field set (through capnp's schema, so a new event gets a
// seed without an edit here), and the AgentConfig the supervisor builds
// (fillAgentConfig) from real flag sets, followed by real Commands.
//   sshsoak-fuzz-seeds OUT_DIR      (docs/fuzzing.md: when to run it)
#include <capnp/dynamic.h>
#include <capnp/message.h>
#include <capnp/schema.h>
#include <capnp/serialize.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "events.capnp.h"
#include "fuzz/sandbox.h"
#include "supervisor/cli.h"
#include "supervisor/run/agent_config.h"

namespace {

using namespace sshsoak;
namespace fs = std::filesystem;

void fillStruct(capnp::DynamicStruct::Builder b, int depth, unsigned variant);

void fillField(capnp::DynamicStruct::Builder b, capnp::StructSchema::Field f, int depth, unsigned variant) {
  auto type = f.getType();
  if (f.getProto().isGroup()) {
    fillStruct(b.init(f).as<capnp::DynamicStruct>(), depth + 1, variant);
    return;
  }
  switch (type.which()) {
    case capnp::schema::Type::VOID: b.set(f, capnp::VOID); break;
    case capnp::schema::Type::BOOL: b.set(f, true); break;
    case capnp::schema::Type::INT8:
    case capnp::schema::Type::INT16:
    case capnp::schema::Type::INT32:
    case capnp::schema::Type::INT64:
    case capnp::schema::Type::UINT8:
    case capnp::schema::Type::UINT16:
    case capnp::schema::Type::UINT32:
    case capnp::schema::Type::UINT64: b.set(f, static_cast<int64_t>(1 + (variant + depth) % 100)); break;
    case capnp::schema::Type::FLOAT32:
    case capnp::schema::Type::FLOAT64: b.set(f, 1.5); break;
    case capnp::schema::Type::TEXT: b.set(f, "seed"); break;
    case capnp::schema::Type::DATA: break;
    case capnp::schema::Type::ENUM: {
      auto enumerants = type.asEnum().getEnumerants();
      b.set(f, capnp::DynamicEnum(enumerants[(variant + 1) % enumerants.size()]));
      break;
    }
    case capnp::schema::Type::STRUCT:
      if (depth < 4) fillStruct(b.init(f).as<capnp::DynamicStruct>(), depth + 1, variant);
      break;
    case capnp::schema::Type::LIST: {
      auto list = b.init(f, 3).as<capnp::DynamicList>();
      auto element = type.asList().getElementType();
      for (unsigned i = 0; i < list.size(); ++i) {
        switch (element.which()) {
          case capnp::schema::Type::STRUCT:
            if (depth < 4) fillStruct(list[i].as<capnp::DynamicStruct>(), depth + 1, variant + i);
            break;
          case capnp::schema::Type::TEXT: list.set(i, "seed"); break;
          case capnp::schema::Type::FLOAT32:
          case capnp::schema::Type::FLOAT64: list.set(i, 2.5); break;
          case capnp::schema::Type::BOOL: list.set(i, true); break;
          case capnp::schema::Type::INT8:
          case capnp::schema::Type::INT16:
          case capnp::schema::Type::INT32:
          case capnp::schema::Type::INT64:
          case capnp::schema::Type::UINT8:
          case capnp::schema::Type::UINT16:
          case capnp::schema::Type::UINT32:
          case capnp::schema::Type::UINT64: list.set(i, static_cast<int64_t>(i + 1)); break;
          default: break;
        }
      }
      break;
    }
    default: break;  // AnyPointer, interfaces: none on the wire
  }
}

void fillStruct(capnp::DynamicStruct::Builder b, int depth, unsigned variant) {
  auto schema = b.getSchema();
  for (auto f : schema.getNonUnionFields()) fillField(b, f, depth, variant);
  auto unionFields = schema.getUnionFields();
  if (unionFields.size() > 0) fillField(b, unionFields[variant % unionFields.size()], depth, variant);
}

void writeBytes(const fs::path& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

std::string frameOf(capnp::MessageBuilder& message) {
  auto words = capnp::messageToFlatArray(message);
  auto bytes = words.asBytes();
  return std::string(reinterpret_cast<const char*>(bytes.begin()), bytes.size());
}

void writeEvents(const fs::path& dir) {
  fs::create_directories(dir);
  auto schema = capnp::Schema::from<wire::Event>();
  std::string all;
  for (auto member : schema.getUnionFields()) {
    capnp::MallocMessageBuilder message;
    auto root = message.initRoot<capnp::DynamicStruct>(schema);
    fillStruct(root, 0, 0);
    fillField(root, member, 0, 0);
    std::string frame = frameOf(message);
    writeBytes(dir / (std::string(member.getProto().getName().cStr()) + ".bin"), frame);
    all += frame;
  }
  writeBytes(dir / "all-events.bin", all);  // a whole stream, back to back
}

std::string commands(unsigned variant) {
  std::string out;
  for (unsigned i = 0; i < 3; ++i) {
    capnp::MallocMessageBuilder message;
    auto root = message.initRoot<capnp::DynamicStruct>(capnp::Schema::from<wire::Command>());
    fillStruct(root, 0, variant + i);
    out += frameOf(message);
  }
  return out;
}

int writeAgentConfigs(const fs::path& dir) {
  fs::create_directories(dir);
  // Real flag sets (docs/reference.md's examples); --log-path lands in the sandbox.
  const std::vector<std::pair<std::string, std::vector<std::string>>> flagSets{
      {"pty", {"--sessions", "2", "--duration-secs", "60"}},
      {"drops", {"--sessions", "3", "--drop", "30/60@0-1", "--fault-cmd", "45:true"}},
      {"exec-poll", {"--sessions", "2", "--poll-interval-secs", "1", "--log-detail", "full"}},
      {"churn", {"--workload", "churn", "--churn-rate", "5..20/60s"}},
      {"transfer", {"--workload", "transfer", "--transfer-mb", "4", "--transfer-direction", "both"}},
      {"jobs", {"--workload", "jobs", "--sessions", "2", "--job-rate", "3"}},
  };
  unsigned variant = 0;
  for (const auto& [name, flags] : flagSets) {
    std::vector<std::string> args{"sshsoak"};
    args.insert(args.end(), flags.begin(), flags.end());
    args.push_back("--log-path");
    args.push_back(fuzz::sandboxDir() + "/seed.jsonl");
    std::vector<const char*> argv;
    for (const auto& a : args) argv.push_back(a.c_str());
    auto options = cli::parse(static_cast<int>(args.size()), argv.data());
    if (!options) {
      std::fprintf(stderr, "sshsoak-fuzz-seeds: flag set %s: %s\n", name.c_str(), options.error().message.c_str());
      return 1;
    }
    // Without --targets main fills the slots once the private sshd listens.
    if (options->slots.empty()) options->slots.assign(options->sessions, cli::Target{"127.0.0.1", 2222});
    capnp::MallocMessageBuilder message;
    fillAgentConfig(message.initRoot<wire::AgentConfig>(), *options, 0, "/sshsoak-fuzz-bucket");
    writeBytes(dir / (name + ".bin"), frameOf(message) + commands(variant++));
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: sshsoak-fuzz-seeds OUT_DIR (the repository's fuzz/corpus)\n");
    return 2;
  }
  fs::path out = argv[1];
  writeEvents(out / "frame_events");
  return writeAgentConfigs(out / "agent_frames");
}
