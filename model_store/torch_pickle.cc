#include "model_store/torch_pickle.h"

#include <caffe2/serialize/inline_container.h>
#include <torch/types.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <set>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "model_store/status_macros.h"
#include "model_store/torch_errors.h"

namespace headway {
namespace {

using Kind = PickleValue::Kind;

// Pickle values nested deeper than this are refused (state_dicts nest a few levels).
constexpr int kMaxNesting = 1000;

// Every value made while a PickleReader reads, so that it can break the reference
// cycles a hostile pickle builds (a list appended into itself) before they leak.
thread_local std::vector<std::weak_ptr<PickleValue>>* made_values = nullptr;

PickleValuePtr MakeValue(Kind kind) {
  auto value = std::make_shared<PickleValue>();
  value->kind = kind;
  if (made_values != nullptr) made_values->push_back(value);
  return value;
}

// Calls `visit` on each value `value` holds: items, dict keys and values, state.
template <typename Visit>
void ForEachChild(const PickleValue& value, Visit&& visit) {
  for (const PickleValuePtr& item : value.items) visit(item);
  for (const auto& [key, item] : value.entries) {
    visit(key);
    visit(item);
  }
  if (value.state) visit(value.state);
}

// OK when `root` holds no value inside itself and nests at most kMaxNesting deep;
// fills `tree` with every value it holds. Iterative: any depth is safe to check.
absl::Status CheckTree(const PickleValuePtr& root, std::set<const PickleValue*>& tree) {
  enum class Mark { kOnPath, kDone };
  std::map<const PickleValue*, Mark> marks;
  struct Frame {
    const PickleValue* value;
    std::vector<const PickleValue*> children;
    size_t next = 0;
  };
  std::vector<Frame> path;
  const auto enter = [&](const PickleValue* value) -> absl::Status {
    if (static_cast<int>(path.size()) >= kMaxNesting) {
      return absl::InvalidArgumentError(
          absl::StrCat("pickle values are nested more than ", kMaxNesting, " deep"));
    }
    marks[value] = Mark::kOnPath;
    Frame frame{value, {}, 0};
    ForEachChild(*value, [&](const PickleValuePtr& child) {
      if (child) frame.children.push_back(child.get());
    });
    path.push_back(std::move(frame));
    return absl::OkStatus();
  };
  HEADWAY_RETURN_IF_ERROR(enter(root.get()));
  while (!path.empty()) {
    Frame& frame = path.back();
    if (frame.next == frame.children.size()) {
      marks[frame.value] = Mark::kDone;
      tree.insert(frame.value);
      path.pop_back();
      continue;
    }
    const PickleValue* child = frame.children[frame.next++];
    auto mark = marks.find(child);
    if (mark == marks.end()) {
      HEADWAY_RETURN_IF_ERROR(enter(child));
    } else if (mark->second == Mark::kOnPath) {
      return absl::InvalidArgumentError("a pickle value contains itself");
    }
  }
  return absl::OkStatus();
}

PickleValuePtr MakeInt(int64_t integer) {
  PickleValuePtr value = MakeValue(Kind::kInt);
  value->integer = integer;
  return value;
}

PickleValuePtr MakeText(Kind kind, std::string text) {
  PickleValuePtr value = MakeValue(kind);
  value->text = std::move(text);
  return value;
}

absl::StatusOr<c10::ScalarType> StorageScalarType(absl::string_view storage_class) {
  static const auto* const kTypes =
      new std::map<std::string, c10::ScalarType, std::less<>>{
          {"torch.FloatStorage", c10::kFloat},
          {"torch.DoubleStorage", c10::kDouble},
          {"torch.HalfStorage", c10::kHalf},
          {"torch.BFloat16Storage", c10::kBFloat16},
          {"torch.LongStorage", c10::kLong},
          {"torch.IntStorage", c10::kInt},
          {"torch.ShortStorage", c10::kShort},
          {"torch.CharStorage", c10::kChar},
          {"torch.ByteStorage", c10::kByte},
          {"torch.BoolStorage", c10::kBool},
          {"torch.ComplexFloatStorage", c10::kComplexFloat},
          {"torch.ComplexDoubleStorage", c10::kComplexDouble},
      };
  auto it = kTypes->find(storage_class);
  if (it == kTypes->end()) {
    return absl::InvalidArgumentError(
        absl::StrCat("unsupported storage type ", storage_class));
  }
  return it->second;
}

// Loads each storage (data/<key>) once, onto the target device.
class StorageLoader {
 public:
  // With `locations_only`, storages are not read: each becomes a tensor on the meta
  // device (no memory), and only the locations they were saved from are kept.
  StorageLoader(caffe2::serialize::PyTorchStreamReader* reader, c10::Device device,
                bool locations_only = false)
      : reader_(reader), device_(device), locations_only_(locations_only) {}

  absl::StatusOr<at::Tensor> Load(const std::string& key, absl::string_view storage_class,
                                  int64_t numel, const std::string& location) {
    auto it = storages_.find(key);
    if (it != storages_.end()) return it->second;
    HEADWAY_ASSIGN_OR_RETURN(const c10::ScalarType type,
                             StorageScalarType(storage_class));
    if (locations_only_) {
      saved_locations_.insert(location);
      at::Tensor storage = torch::empty({std::max<int64_t>(numel, 0)},
                                        torch::dtype(type).device(c10::kMeta));
      storages_.emplace(key, storage);
      return storage;
    }
    const std::string record = "data/" + key;
    if (numel < 0 || !reader_->hasRecord(record)) {
      return absl::InvalidArgumentError(
          absl::StrCat("storage record ", record, " is missing"));
    }
    auto [data, size] = reader_->getRecord(record);
    const size_t needed = static_cast<size_t>(numel) * c10::elementSize(type);
    if (size < needed) {
      return absl::InvalidArgumentError(absl::StrCat(
          "storage record ", record, " has ", size, " bytes; ", needed, " expected"));
    }
    at::Tensor storage = torch::empty({numel}, torch::dtype(type));
    std::memcpy(storage.data_ptr(), data.get(), needed);
    storage = storage.to(device_);
    saved_locations_.insert(location);
    storages_.emplace(key, storage);
    return storage;
  }

  std::set<std::string> saved_locations() const { return saved_locations_; }

 private:
  caffe2::serialize::PyTorchStreamReader* reader_;
  c10::Device device_;
  const bool locations_only_;
  std::map<std::string, at::Tensor> storages_;
  std::set<std::string> saved_locations_;
};

std::vector<int64_t> IntsOf(const PickleValue& tuple) {
  std::vector<int64_t> ints;
  for (const PickleValuePtr& item : tuple.items) ints.push_back(item->integer);
  return ints;
}

// The pickle virtual machine, for the opcodes of protocols 2 to 4.
class PickleReader {
 public:
  PickleReader(absl::string_view data, StorageLoader* storages)
      : data_(data), storages_(storages), outer_made_values_(made_values) {
    made_values = &made_;
  }

  // Frees every value the pickle made that the result does not hold, breaking any
  // reference cycles among them; deep chains are freed without recursion (see
  // ~PickleValue).
  ~PickleReader() {
    made_values = outer_made_values_;
    stack_.clear();
    memo_.clear();
    std::vector<PickleValuePtr> garbage;
    for (const std::weak_ptr<PickleValue>& made : made_) {
      if (PickleValuePtr value = made.lock();
          value && result_tree_.count(value.get()) == 0) {
        garbage.push_back(std::move(value));
      }
    }
    for (const PickleValuePtr& value : garbage) {
      value->items.clear();
      value->entries.clear();
      value->state.reset();
    }
  }

  absl::StatusOr<PickleValuePtr> Read() {
    while (true) {
      if (pos_ >= data_.size()) return Error("pickle ends without STOP");
      const size_t at = pos_;
      const unsigned char op = static_cast<unsigned char>(data_[pos_++]);
      if (op == '.') {
        if (stack_.size() != 1) return Error("pickle stack is not one value at STOP");
        std::set<const PickleValue*> tree;
        HEADWAY_RETURN_IF_ERROR(CheckTree(stack_.back(), tree));
        result_tree_ = std::move(tree);
        return stack_.back();
      }
      absl::Status status = Step(op);
      if (!status.ok()) {
        return absl::InvalidArgumentError(
            absl::StrCat("malformed pickle at byte ", at, ": ", status.message()));
      }
    }
  }

 private:
  static absl::Status Error(absl::string_view message) {
    return absl::InvalidArgumentError(message);
  }

  absl::StatusOr<absl::string_view> Take(size_t n) {
    if (n > data_.size() - pos_) return Error("pickle is truncated");
    absl::string_view bytes = data_.substr(pos_, n);
    pos_ += n;
    return bytes;
  }

  template <typename T>
  absl::StatusOr<T> TakeLittleEndian() {
    HEADWAY_ASSIGN_OR_RETURN(absl::string_view bytes, Take(sizeof(T)));
    T value;
    std::memcpy(&value, bytes.data(), sizeof(T));
    return value;
  }

  absl::StatusOr<std::string> TakeLine() {
    const size_t end = data_.find('\n', pos_);
    if (end == absl::string_view::npos) return Error("pickle is truncated");
    std::string line(data_.substr(pos_, end - pos_));
    pos_ = end + 1;
    return line;
  }

  absl::StatusOr<PickleValuePtr> Pop() {
    if (stack_.empty() || (!marks_.empty() && stack_.size() <= marks_.back())) {
      return Error("pickle stack underflow");
    }
    PickleValuePtr value = std::move(stack_.back());
    stack_.pop_back();
    return value;
  }

  absl::StatusOr<PickleValuePtr> Top() {
    if (stack_.empty()) return Error("pickle stack underflow");
    return stack_.back();
  }

  // The values since the last MARK, which is removed.
  absl::StatusOr<std::vector<PickleValuePtr>> PopToMark() {
    if (marks_.empty()) return Error("no MARK on the pickle stack");
    const size_t mark = marks_.back();
    marks_.pop_back();
    std::vector<PickleValuePtr> values(std::make_move_iterator(stack_.begin() + mark),
                                       std::make_move_iterator(stack_.end()));
    stack_.resize(mark);
    return values;
  }

  absl::Status Push(PickleValuePtr value) {
    if (stack_.size() > kMaxStack) return Error("pickle stack too deep");
    stack_.push_back(std::move(value));
    return absl::OkStatus();
  }

  absl::Status PushLong(absl::string_view bytes) {
    if (bytes.size() > 8) return Error("integer wider than 64 bits");
    uint64_t value = 0;
    for (size_t i = 0; i < bytes.size(); ++i) {
      value |= static_cast<uint64_t>(static_cast<unsigned char>(bytes[i])) << (8 * i);
    }
    if (!bytes.empty() && bytes.size() < 8 && (bytes.back() & 0x80)) {
      value |= ~uint64_t{0} << (8 * bytes.size());  // sign-extend
    }
    return Push(MakeInt(static_cast<int64_t>(value)));
  }

  absl::Status Memoise(uint64_t index) {
    HEADWAY_ASSIGN_OR_RETURN(PickleValuePtr top, Top());
    memo_[index] = std::move(top);
    return absl::OkStatus();
  }

  absl::Status Recall(uint64_t index) {
    auto it = memo_.find(index);
    if (it == memo_.end()) return Error(absl::StrCat("memo ", index, " is not set"));
    return Push(it->second);
  }

  absl::Status SetItems(const std::vector<PickleValuePtr>& pairs) {
    HEADWAY_ASSIGN_OR_RETURN(PickleValuePtr dict, Top());
    if (dict->kind != Kind::kDict) return Error("SETITEM on a value that is not a dict");
    if (pairs.size() % 2 != 0) return Error("SETITEMS with an odd number of values");
    for (size_t i = 0; i < pairs.size(); i += 2)
      dict->entries.emplace_back(pairs[i], pairs[i + 1]);
    return absl::OkStatus();
  }

  absl::Status Append(const std::vector<PickleValuePtr>& values) {
    HEADWAY_ASSIGN_OR_RETURN(PickleValuePtr list, Top());
    if (list->kind != Kind::kList && list->kind != Kind::kSet &&
        list->kind != Kind::kObject) {
      return Error("APPEND on a value that is not a list");
    }
    list->items.insert(list->items.end(), values.begin(), values.end());
    return absl::OkStatus();
  }

  // ('storage', <storage class>, key, location, numel) -> the storage, 1-D.
  absl::Status PersistentLoad() {
    HEADWAY_ASSIGN_OR_RETURN(PickleValuePtr pid, Pop());
    if (pid->kind != Kind::kTuple || pid->items.size() < 5 ||
        pid->items[0]->kind != Kind::kString || pid->items[0]->text != "storage" ||
        pid->items[1]->kind != Kind::kGlobal || pid->items[2]->kind != Kind::kString ||
        pid->items[3]->kind != Kind::kString || pid->items[4]->kind != Kind::kInt) {
      return Error("unsupported persistent id (expected a torch storage)");
    }
    HEADWAY_ASSIGN_OR_RETURN(
        at::Tensor storage, storages_->Load(pid->items[2]->text, pid->items[1]->text,
                                            pid->items[4]->integer, pid->items[3]->text));
    PickleValuePtr value = MakeValue(Kind::kTensor);
    value->tensor = std::move(storage);
    return Push(std::move(value));
  }

  absl::StatusOr<PickleValuePtr> Reduce(const PickleValue& callable,
                                        const PickleValue& args) {
    const std::string& name = callable.text;
    if (callable.kind == Kind::kGlobal) {
      if (name == "collections.OrderedDict" || name == "builtins.dict") {
        return MakeValue(Kind::kDict);
      }
      if (name == "torch._utils._rebuild_tensor_v2" ||
          name == "torch._utils._rebuild_tensor") {
        if (args.items.size() < 4 || args.items[0]->kind != Kind::kTensor ||
            args.items[2]->kind != Kind::kTuple || args.items[3]->kind != Kind::kTuple) {
          return Error("malformed _rebuild_tensor arguments");
        }
        const std::vector<int64_t> size = IntsOf(*args.items[2]);
        const std::vector<int64_t> stride = IntsOf(*args.items[3]);
        const int64_t offset = args.items[1]->integer;
        const at::Tensor& storage = args.items[0]->tensor;
        if (size.size() != stride.size())
          return Error("tensor size and stride differ in rank");
        int64_t last = offset;
        for (size_t d = 0; d < size.size(); ++d) {
          if (size[d] < 0 || stride[d] < 0)
            return Error("negative tensor size or stride");
          if (size[d] == 0) last = -1;
          if (last >= 0) last += (size[d] - 1) * stride[d];
        }
        if (offset < 0 || last >= storage.numel()) {
          return Error("tensor reaches past its storage");
        }
        PickleValuePtr value = MakeValue(Kind::kTensor);
        value->tensor = storage.as_strided(size, stride, offset);
        return value;
      }
      if (name == "torch._utils._rebuild_parameter" ||
          name == "torch._utils._rebuild_parameter_with_state") {
        if (args.items.empty() || args.items[0]->kind != Kind::kTensor) {
          return Error("malformed _rebuild_parameter arguments");
        }
        return args.items[0];
      }
      if (name == "torch.Size" && args.items.size() == 1) return args.items[0];
      // LibTorch's torch::pickle_save tags containers with their TorchScript type
      // ("Dict[str, Tensor]"); torch.load, like this, keeps the container.
      if (name == "torch.jit._pickle.restore_type_tag" && args.items.size() == 2) {
        return args.items[0];
      }
    }
    PickleValuePtr object = MakeText(Kind::kObject, name);
    object->items = args.items;
    return object;
  }

  absl::Status Step(unsigned char op) {
    switch (op) {
      case 0x80:  // PROTO
        return Take(1).status();
      case 0x95:  // FRAME
        return Take(8).status();
      case '(':  // MARK
        marks_.push_back(stack_.size());
        return absl::OkStatus();
      case 'N':
        return Push(MakeValue(Kind::kNone));
      case 0x88:    // NEWTRUE
      case 0x89: {  // NEWFALSE
        PickleValuePtr value = MakeValue(Kind::kBool);
        value->boolean = op == 0x88;
        return Push(std::move(value));
      }
      case 'J': {
        HEADWAY_ASSIGN_OR_RETURN(const int32_t value, TakeLittleEndian<int32_t>());
        return Push(MakeInt(value));
      }
      case 'K': {
        HEADWAY_ASSIGN_OR_RETURN(const uint8_t value, TakeLittleEndian<uint8_t>());
        return Push(MakeInt(value));
      }
      case 'M': {
        HEADWAY_ASSIGN_OR_RETURN(const uint16_t value, TakeLittleEndian<uint16_t>());
        return Push(MakeInt(value));
      }
      case 0x8a: {  // LONG1
        HEADWAY_ASSIGN_OR_RETURN(const uint8_t n, TakeLittleEndian<uint8_t>());
        HEADWAY_ASSIGN_OR_RETURN(absl::string_view bytes, Take(n));
        return PushLong(bytes);
      }
      case 0x8b: {  // LONG4
        HEADWAY_ASSIGN_OR_RETURN(const int32_t n, TakeLittleEndian<int32_t>());
        if (n < 0) return Error("negative LONG4 length");
        HEADWAY_ASSIGN_OR_RETURN(absl::string_view bytes, Take(n));
        return PushLong(bytes);
      }
      case 'G': {  // BINFLOAT, big-endian
        HEADWAY_ASSIGN_OR_RETURN(absl::string_view bytes, Take(8));
        uint64_t bits = 0;
        for (char c : bytes) bits = (bits << 8) | static_cast<unsigned char>(c);
        PickleValuePtr value = MakeValue(Kind::kFloat);
        std::memcpy(&value->real, &bits, sizeof(double));
        return Push(std::move(value));
      }
      case 'X':    // BINUNICODE
      case 'T':    // BINSTRING
      case 'B': {  // BINBYTES
        HEADWAY_ASSIGN_OR_RETURN(const uint32_t n, TakeLittleEndian<uint32_t>());
        HEADWAY_ASSIGN_OR_RETURN(absl::string_view bytes, Take(n));
        return Push(
            MakeText(op == 'B' ? Kind::kBytes : Kind::kString, std::string(bytes)));
      }
      case 0x8c:   // SHORT_BINUNICODE
      case 'U':    // SHORT_BINSTRING
      case 'C': {  // SHORT_BINBYTES
        HEADWAY_ASSIGN_OR_RETURN(const uint8_t n, TakeLittleEndian<uint8_t>());
        HEADWAY_ASSIGN_OR_RETURN(absl::string_view bytes, Take(n));
        return Push(
            MakeText(op == 'C' ? Kind::kBytes : Kind::kString, std::string(bytes)));
      }
      case 0x8d:    // BINUNICODE8
      case 0x8e: {  // BINBYTES8
        HEADWAY_ASSIGN_OR_RETURN(const uint64_t n, TakeLittleEndian<uint64_t>());
        HEADWAY_ASSIGN_OR_RETURN(absl::string_view bytes, Take(n));
        return Push(
            MakeText(op == 0x8e ? Kind::kBytes : Kind::kString, std::string(bytes)));
      }
      case ')':
        return Push(MakeValue(Kind::kTuple));
      case ']':
        return Push(MakeValue(Kind::kList));
      case '}':
        return Push(MakeValue(Kind::kDict));
      case 0x8f:  // EMPTY_SET
        return Push(MakeValue(Kind::kSet));
      case 't':
      case 'l':     // LIST
      case 0x91: {  // FROZENSET
        HEADWAY_ASSIGN_OR_RETURN(std::vector<PickleValuePtr> items, PopToMark());
        PickleValuePtr value = MakeValue(op == 't'   ? Kind::kTuple
                                         : op == 'l' ? Kind::kList
                                                     : Kind::kSet);
        value->items = std::move(items);
        return Push(std::move(value));
      }
      case 'd': {  // DICT
        HEADWAY_ASSIGN_OR_RETURN(std::vector<PickleValuePtr> items, PopToMark());
        HEADWAY_RETURN_IF_ERROR(Push(MakeValue(Kind::kDict)));
        return SetItems(items);
      }
      case 0x85:
      case 0x86:
      case 0x87: {  // TUPLE1..3
        const size_t n = op - 0x84;
        PickleValuePtr value = MakeValue(Kind::kTuple);
        value->items.resize(n);
        for (size_t i = n; i-- > 0;) {
          HEADWAY_ASSIGN_OR_RETURN(value->items[i], Pop());
        }
        return Push(std::move(value));
      }
      case 'q': {
        HEADWAY_ASSIGN_OR_RETURN(const uint8_t index, TakeLittleEndian<uint8_t>());
        return Memoise(index);
      }
      case 'r': {
        HEADWAY_ASSIGN_OR_RETURN(const uint32_t index, TakeLittleEndian<uint32_t>());
        return Memoise(index);
      }
      case 0x94:  // MEMOIZE
        return Memoise(memo_.size());
      case 'h': {
        HEADWAY_ASSIGN_OR_RETURN(const uint8_t index, TakeLittleEndian<uint8_t>());
        return Recall(index);
      }
      case 'j': {
        HEADWAY_ASSIGN_OR_RETURN(const uint32_t index, TakeLittleEndian<uint32_t>());
        return Recall(index);
      }
      case 'c': {  // GLOBAL "module\nname\n"
        HEADWAY_ASSIGN_OR_RETURN(const std::string module, TakeLine());
        HEADWAY_ASSIGN_OR_RETURN(const std::string name, TakeLine());
        return Push(MakeText(Kind::kGlobal, absl::StrCat(module, ".", name)));
      }
      case 0x93: {  // STACK_GLOBAL
        HEADWAY_ASSIGN_OR_RETURN(const PickleValuePtr name, Pop());
        HEADWAY_ASSIGN_OR_RETURN(const PickleValuePtr module, Pop());
        return Push(MakeText(Kind::kGlobal, absl::StrCat(module->text, ".", name->text)));
      }
      case 'R':     // REDUCE
      case 0x81: {  // NEWOBJ
        HEADWAY_ASSIGN_OR_RETURN(const PickleValuePtr args, Pop());
        HEADWAY_ASSIGN_OR_RETURN(const PickleValuePtr callable, Pop());
        if (args->kind != Kind::kTuple) return Error("REDUCE arguments are not a tuple");
        HEADWAY_ASSIGN_OR_RETURN(PickleValuePtr value, Reduce(*callable, *args));
        return Push(std::move(value));
      }
      case 'b': {  // BUILD
        HEADWAY_ASSIGN_OR_RETURN(PickleValuePtr state, Pop());
        HEADWAY_ASSIGN_OR_RETURN(PickleValuePtr target, Top());
        target->state = std::move(state);
        return absl::OkStatus();
      }
      case 'Q':  // BINPERSID
        return PersistentLoad();
      case 's': {
        HEADWAY_ASSIGN_OR_RETURN(PickleValuePtr value, Pop());
        HEADWAY_ASSIGN_OR_RETURN(PickleValuePtr key, Pop());
        return SetItems({std::move(key), std::move(value)});
      }
      case 'u': {
        HEADWAY_ASSIGN_OR_RETURN(std::vector<PickleValuePtr> items, PopToMark());
        return SetItems(items);
      }
      case 'a': {
        HEADWAY_ASSIGN_OR_RETURN(PickleValuePtr value, Pop());
        return Append({std::move(value)});
      }
      case 'e':     // APPENDS
      case 0x90: {  // ADDITEMS
        HEADWAY_ASSIGN_OR_RETURN(std::vector<PickleValuePtr> items, PopToMark());
        return Append(items);
      }
      case '0':
        return Pop().status();
      case '1':
        return PopToMark().status();
      case '2': {
        HEADWAY_ASSIGN_OR_RETURN(PickleValuePtr top, Top());
        return Push(std::move(top));
      }
      default:
        return Error(absl::StrCat("unsupported pickle opcode 0x", absl::Hex(op)));
    }
  }

  static constexpr size_t kMaxStack = 1 << 20;

  absl::string_view data_;
  size_t pos_ = 0;
  StorageLoader* storages_;
  std::vector<PickleValuePtr> stack_;
  std::vector<size_t> marks_;
  std::map<uint64_t, PickleValuePtr> memo_;
  std::vector<std::weak_ptr<PickleValue>> made_;
  // The registry of a reader this one runs inside, if any, restored at the end.
  std::vector<std::weak_ptr<PickleValue>>* const outer_made_values_;
  std::set<const PickleValue*> result_tree_;  // the values the result holds
};

bool IsZip(const std::string& bytes) { return absl::StartsWith(bytes, "PK\x03\x04"); }

}  // namespace

PickleValue::~PickleValue() {
  // Destroying a child whose last reference this is would recurse, a frame per level
  // of nesting: the outermost destructor running on this thread frees them in a loop.
  thread_local std::vector<PickleValuePtr>* pending = nullptr;
  std::vector<PickleValuePtr> mine;
  const bool outermost = pending == nullptr;
  if (outermost) pending = &mine;
  for (PickleValuePtr& item : items) pending->push_back(std::move(item));
  for (auto& [key, item] : entries) {
    pending->push_back(std::move(key));
    pending->push_back(std::move(item));
  }
  if (state) pending->push_back(std::move(state));
  if (!outermost) return;
  while (!mine.empty()) {
    PickleValuePtr next = std::move(mine.back());
    mine.pop_back();
    next.reset();  // may push its children onto `mine`
  }
  pending = nullptr;
}

PickleValuePtr PickleValue::Find(absl::string_view key) const {
  for (const auto& [k, v] : entries) {
    if (k->kind == Kind::kString && k->text == key) return v;
  }
  return nullptr;
}

ArchiveFormat DetectArchiveFormat(const std::string& bytes) {
  if (!IsZip(bytes)) {
    // The legacy format is a pickle (protocol 2) of torch.save's magic number first.
    return absl::StartsWith(bytes,
                            "\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19")
               ? ArchiveFormat::kLegacyTorchSave
               : ArchiveFormat::kUnknown;
  }
  absl::StatusOr<ArchiveFormat> format =
      CallTorch("reading archive", absl::StatusCode::kInvalidArgument, [&] {
        std::istringstream stream(bytes);
        caffe2::serialize::PyTorchStreamReader reader(&stream);
        if (reader.hasRecord("constants.pkl") || reader.hasRecord("code/__torch__.py")) {
          return ArchiveFormat::kTorchScript;
        }
        for (const std::string& record : reader.getAllRecords()) {
          if (absl::StartsWith(record, "code/")) return ArchiveFormat::kTorchScript;
        }
        return reader.hasRecord("data.pkl") ? ArchiveFormat::kTorchSave
                                            : ArchiveFormat::kUnknown;
      });
  return format.value_or(ArchiveFormat::kUnknown);
}

absl::StatusOr<TorchSaveContents> ReadTorchSave(const std::string& bytes,
                                                c10::Device device) {
  if (!IsZip(bytes)) {
    if (DetectArchiveFormat(bytes) == ArchiveFormat::kLegacyTorchSave) {
      return absl::InvalidArgumentError(
          "legacy torch.save format (PyTorch < 1.6, or "
          "_use_new_zipfile_serialization=False) "
          "is not supported: load it in PyTorch and save it again with torch.save");
    }
    return absl::InvalidArgumentError("not a torch.save archive (no zip header)");
  }
  std::istringstream stream(bytes);
  HEADWAY_ASSIGN_OR_RETURN(
      std::unique_ptr<caffe2::serialize::PyTorchStreamReader> reader,
      CallTorch("reading torch.save archive", absl::StatusCode::kInvalidArgument, [&] {
        return std::make_unique<caffe2::serialize::PyTorchStreamReader>(&stream);
      }));
  if (!reader->hasRecord("data.pkl")) {
    return absl::InvalidArgumentError("torch.save archive has no data.pkl");
  }
  StorageLoader storages(reader.get(), device);
  TorchSaveContents contents;
  absl::Status status = CallTorch(
      "reading torch.save archive", absl::StatusCode::kInvalidArgument,
      [&]() -> absl::Status {
        auto [data, size] = reader->getRecord("data.pkl");
        const absl::string_view pickle(static_cast<const char*>(data.get()), size);
        PickleReader unpickler(pickle, &storages);
        HEADWAY_ASSIGN_OR_RETURN(contents.root, unpickler.Read());
        return absl::OkStatus();
      });
  HEADWAY_RETURN_IF_ERROR(status);
  contents.saved_locations = storages.saved_locations();
  return contents;
}

absl::StatusOr<std::set<std::string>> ReadSavedLocations(const std::string& bytes) {
  if (!IsZip(bytes)) return absl::InvalidArgumentError("not a zip archive");
  std::istringstream stream(bytes);
  std::set<std::string> locations;
  HEADWAY_RETURN_IF_ERROR(CallTorch(
      "reading the archive's storages", absl::StatusCode::kInvalidArgument,
      [&]() -> absl::Status {
        caffe2::serialize::PyTorchStreamReader reader(&stream);
        if (!reader.hasRecord("data.pkl")) {
          return absl::InvalidArgumentError("the archive has no data.pkl");
        }
        auto [data, size] = reader.getRecord("data.pkl");
        StorageLoader storages(&reader, c10::kCPU, /*locations_only=*/true);
        PickleReader unpickler(
            absl::string_view(static_cast<const char*>(data.get()), size), &storages);
        HEADWAY_RETURN_IF_ERROR(unpickler.Read().status());
        locations = storages.saved_locations();
        return absl::OkStatus();
      }));
  return locations;
}

}  // namespace headway
