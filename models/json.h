// models/json.h — a small JSON value, parser and serializer (HF config.json, safetensors headers,
// trainer state).
//
// What it is: one `Json` class holding null / bool / integer / double / string / array / object.
// Integers without a fraction or exponent stay exact int64 (129280, token ids, byte offsets up to
// 2^63); everything else is a double. Objects keep their keys in insertion order, so a file read
// and written back keeps its layout. Errors are std::runtime_error starting with "[json]" and name
// the source (a file name), the line and column (1-based, counted in bytes) and what was expected:
//   [json] config.json:3:17: expected ',' or '}' after an object member, found '"'
//
// What it is not: a streaming parser, a schema validator or a fast one. Extensions beyond RFC 8259:
// NaN, Infinity and -Infinity are read and written as Python's json module does (JSON has no other
// way to store a diverged loss); duplicate keys in an object are an error (RFC 8259 leaves them
// undefined; Python silently keeps the last one). Standard library only.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace sg {

class Json {
 public:
  enum class Type { Null, Bool, Int, Double, String, Array, Object };
  using Array = std::vector<Json>;
  using Object = std::vector<std::pair<std::string, Json>>;  // insertion order, keys unique

  Json() = default;  // null
  Json(std::nullptr_t) {}
  Json(bool b) : type_(Type::Bool), bool_(b) {}
  Json(int i) : type_(Type::Int), int_(i) {}
  Json(long i) : type_(Type::Int), int_(i) {}
  Json(long long i) : type_(Type::Int), int_(i) {}
  Json(unsigned i) : type_(Type::Int), int_(i) {}
  Json(unsigned long i);       // throws above INT64_MAX
  Json(unsigned long long i);  // throws above INT64_MAX
  Json(double d) : type_(Type::Double), double_(d) {}
  Json(const char* s) : type_(Type::String), string_(s) {}
  Json(std::string s) : type_(Type::String), string_(std::move(s)) {}
  Json(std::string_view s) : type_(Type::String), string_(s) {}
  Json(Array a) : type_(Type::Array), array_(std::move(a)) {}
  Json(Object o);  // throws on duplicate keys
  static Json array() { return Json(Array{}); }
  static Json object() { return Json(Object{}); }

  // Parses one JSON value (surrounding whitespace allowed, nothing else). `source_name` is used in
  // error messages and remembered by every parsed value for at()/get_*() errors.
  static Json parse(std::string_view text, std::string_view source_name = "<string>");

  // indent < 0: compact, no spaces ({"a":[1,2]}); indent >= 0: one member per line, nested
  // `indent` spaces deeper, ": " after keys. Strings are written as UTF-8 with ", \ and control
  // characters escaped; doubles in the shortest form that reads back to the same bits, always with
  // a '.' or exponent so they read back as doubles.
  std::string dump(int indent = -1) const;

  Type type() const { return type_; }
  // "null", "bool", "integer", "number", "string", "array", "object"
  const char* type_name() const;
  bool is_null() const { return type_ == Type::Null; }
  bool is_bool() const { return type_ == Type::Bool; }
  bool is_int() const { return type_ == Type::Int; }
  bool is_double() const { return type_ == Type::Double; }
  bool is_number() const { return type_ == Type::Int || type_ == Type::Double; }
  bool is_string() const { return type_ == Type::String; }
  bool is_array() const { return type_ == Type::Array; }
  bool is_object() const { return type_ == Type::Object; }

  // Typed reads; a wrong type throws "[json] <source>: expected a string but found integer 3 (at
  // line L, column C)". get_int() also accepts a double with an exact integer value (4.0), as
  // Python writes floats; get_double() accepts integers.
  bool get_bool() const;
  int64_t get_int() const;
  double get_double() const;
  const std::string& get_string() const;

  // Objects. at() throws "[json] <source>: missing key 'x' (object at line L, column C)".
  bool contains(std::string_view key) const;
  const Json& at(std::string_view key) const;
  Json& at(std::string_view key);
  const Json* find(std::string_view key) const;  // nullptr when absent (or not an object)
  const Object& items() const;                    // the members, in insertion order
  Json& set(std::string key, Json value);         // replaces an existing key in place, else appends

  // Arrays.
  const Array& elements() const;
  const Json& at(size_t i) const;  // bounds-checked, names the index and the size
  const Json& operator[](size_t i) const { return at(i); }
  Json& push_back(Json value);

  size_t size() const;  // members of an object, elements of an array; throws for other types

  // Structural equality: same type and value; objects compare as sets of members (order ignored).
  // An integer never equals a double (1 != 1.0), so a round trip must keep number kinds.
  friend bool operator==(const Json& a, const Json& b);

  // Where this value came from (set by parse(); "<value>" and 0:0 for values built in code).
  const std::string& source() const;
  uint32_t line() const { return line_; }
  uint32_t column() const { return column_; }

 private:
  friend class JsonParser;
  [[noreturn]] void type_error(const char* expected) const;
  std::string where() const;  // " (at line L, column C)" or ""

  Type type_ = Type::Null;
  bool bool_ = false;
  int64_t int_ = 0;
  double double_ = 0.0;
  std::string string_;
  Array array_;
  Object object_;
  std::shared_ptr<const std::string> source_;  // shared by all values parsed from one text
  uint32_t line_ = 0, column_ = 0;
};

}  // namespace sg
