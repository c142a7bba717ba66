// models/json.cpp — the JSON parser (recursive descent over RFC 8259's grammar) and serializer.
// See json.h for what is and is not supported.
#include "models/json.h"

#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <limits>
#include <stdexcept>
#include <unordered_set>

namespace sg {

namespace {

constexpr int kMaxDepth = 256;  // deeper nesting is an error, not a stack overflow

// A short, printable rendering of what the parser found at a position, for error messages.
std::string describe_found(std::string_view text, size_t pos) {
  if (pos >= text.size()) return "end of input";
  auto is_word = [](char c) {
    return std::isalnum((unsigned char)c) || c == '_' || c == '+' || c == '-' || c == '.';
  };
  unsigned char c = (unsigned char)text[pos];
  if (is_word((char)c)) {
    size_t end = pos;
    while (end < text.size() && end - pos < 24 && is_word(text[end])) ++end;
    return "'" + std::string(text.substr(pos, end - pos)) + "'";
  }
  if (c < 0x20 || c >= 0x7f) {
    char buf[16];
    std::snprintf(buf, sizeof buf, "byte 0x%02X", c);
    return buf;
  }
  return std::string("'") + (char)c + "'";
}

void append_utf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += (char)cp;
  } else if (cp < 0x800) {
    out += (char)(0xC0 | (cp >> 6));
    out += (char)(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += (char)(0xE0 | (cp >> 12));
    out += (char)(0x80 | ((cp >> 6) & 0x3F));
    out += (char)(0x80 | (cp & 0x3F));
  } else {
    out += (char)(0xF0 | (cp >> 18));
    out += (char)(0x80 | ((cp >> 12) & 0x3F));
    out += (char)(0x80 | ((cp >> 6) & 0x3F));
    out += (char)(0x80 | (cp & 0x3F));
  }
}

// Doubles are written the way Python's repr() writes them: the shortest digits that read back to
// the same double, in fixed notation when the decimal exponent is in [-4, 16), else scientific
// ("1e-06", "1e+16"); a '.0' is added to integral values so they read back as doubles.
void append_double(std::string& out, double d) {
  if (std::isnan(d)) { out += "NaN"; return; }
  if (std::isinf(d)) { out += d > 0 ? "Infinity" : "-Infinity"; return; }
  char buf[64];
  auto sci = std::to_chars(buf, buf + sizeof buf, d, std::chars_format::scientific);
  std::string_view s(buf, sci.ptr - buf);
  const size_t e = s.find('e');  // "d.ddde+XX" / "d.ddde-XX"
  int exp10 = 0;
  std::from_chars(s.data() + e + 2, s.data() + s.size(), exp10);
  if (s[e + 1] == '-') exp10 = -exp10;
  if (exp10 < -4 || exp10 >= 16) { out += s; return; }
  auto fix = std::to_chars(buf, buf + sizeof buf, d, std::chars_format::fixed);
  std::string_view f(buf, fix.ptr - buf);
  out += f;
  if (f.find('.') == std::string_view::npos) out += ".0";
}

void append_quoted(std::string& out, std::string_view s) {
  out += '"';
  for (char ch : s) {
    unsigned char c = (unsigned char)ch;
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out += ch;  // UTF-8 bytes pass through unchanged
        }
    }
  }
  out += '"';
}

}  // namespace

// ---- parser -------------------------------------------------------------------------------------

class JsonParser {
 public:
  JsonParser(std::string_view text, std::string_view source)
      : text_(text), source_(std::make_shared<const std::string>(source)) {}

  Json parse_document() {
    Json v = parse_value(0);
    skip_whitespace();
    if (pos_ < text_.size()) fail("expected end of input after the value");
    return v;
  }

 private:
  std::string_view text_;
  std::shared_ptr<const std::string> source_;
  size_t pos_ = 0;
  size_t line_ = 1, line_start_ = 0;  // line_start_: offset of the first byte of the current line

  [[noreturn]] void fail_at(size_t line, size_t col, const std::string& what) const {
    throw std::runtime_error("[json] " + *source_ + ":" + std::to_string(line) + ":" +
                             std::to_string(col) + ": " + what);
  }
  // "expected X, found Y" at the current position.
  [[noreturn]] void fail(const std::string& expected) const {
    fail_at(line_, column(), expected + ", found " + describe_found(text_, pos_));
  }
  size_t column() const { return pos_ - line_start_ + 1; }
  bool at_end() const { return pos_ >= text_.size(); }
  char peek() const { return at_end() ? '\0' : text_[pos_]; }

  void skip_whitespace() {
    while (!at_end()) {
      char c = text_[pos_];
      if (c == '\n') {
        ++pos_;
        ++line_;
        line_start_ = pos_;
      } else if (c == ' ' || c == '\t' || c == '\r') {
        ++pos_;
      } else {
        break;
      }
    }
  }

  Json located(Json v, size_t line, size_t col) const {
    v.source_ = source_;
    v.line_ = (uint32_t)line;
    v.column_ = (uint32_t)col;
    return v;
  }

  Json parse_value(int depth) {
    skip_whitespace();
    if (depth > kMaxDepth) fail("nesting deeper than " + std::to_string(kMaxDepth) + " levels");
    const size_t line = line_, col = column();
    const char c = peek();
    if (c == '{') return located(parse_object(depth), line, col);
    if (c == '[') return located(parse_array(depth), line, col);
    if (c == '"') return located(Json(parse_string()), line, col);
    if (c == '-' || (c >= '0' && c <= '9')) return located(parse_number(), line, col);
    if (match_word("true")) return located(Json(true), line, col);
    if (match_word("false")) return located(Json(false), line, col);
    if (match_word("null")) return located(Json(), line, col);
    // Python's json module extensions for non-finite floats.
    constexpr double kInf = std::numeric_limits<double>::infinity();
    if (match_word("NaN")) return located(Json(std::nan("")), line, col);
    if (match_word("Infinity")) return located(Json(kInf), line, col);
    fail("expected a value (object, array, string, number, true, false or null)");
  }

  bool match_word(std::string_view word) {
    if (text_.substr(pos_, word.size()) != word) return false;
    pos_ += word.size();
    return true;
  }

  Json parse_object(int depth) {
    ++pos_;  // '{'
    Json::Object members;
    std::unordered_set<std::string> seen;
    skip_whitespace();
    if (peek() == '}') {
      ++pos_;
      return Json(std::move(members));
    }
    while (true) {
      skip_whitespace();
      if (peek() != '"')
        fail(members.empty() ? "expected a string key or '}'" : "expected a string key after ','");
      const size_t key_line = line_, key_col = column();
      std::string key = parse_string();
      if (!seen.insert(key).second) fail_at(key_line, key_col, "duplicate key '" + key + "'");
      skip_whitespace();
      if (peek() != ':') fail("expected ':' after the key '" + key + "'");
      ++pos_;
      Json value = parse_value(depth + 1);
      members.emplace_back(std::move(key), std::move(value));
      skip_whitespace();
      if (peek() == ',') {
        ++pos_;
        continue;
      }
      if (peek() == '}') {
        ++pos_;
        break;
      }
      fail("expected ',' or '}' after an object member");
    }
    Json obj;
    obj.type_ = Json::Type::Object;
    obj.object_ = std::move(members);  // keys already checked unique
    return obj;
  }

  Json parse_array(int depth) {
    ++pos_;  // '['
    Json::Array elements;
    skip_whitespace();
    if (peek() == ']') {
      ++pos_;
      return Json(std::move(elements));
    }
    while (true) {
      elements.push_back(parse_value(depth + 1));
      skip_whitespace();
      if (peek() == ',') {
        ++pos_;
        continue;
      }
      if (peek() == ']') {
        ++pos_;
        break;
      }
      fail("expected ',' or ']' after an array element");
    }
    return Json(std::move(elements));
  }

  uint32_t parse_hex4() {
    uint32_t v = 0;
    for (int i = 0; i < 4; ++i) {
      char c = peek();
      int d = (c >= '0' && c <= '9') ? c - '0'
              : (c >= 'a' && c <= 'f') ? c - 'a' + 10
              : (c >= 'A' && c <= 'F') ? c - 'A' + 10
                                       : -1;
      if (d < 0) fail("expected 4 hex digits after \\u");
      v = v * 16 + (uint32_t)d;
      ++pos_;
    }
    return v;
  }

  std::string parse_string() {
    const size_t start_line = line_, start_col = column();
    ++pos_;  // opening quote
    std::string out;
    while (true) {
      if (at_end())
        fail("expected '\"' to close the string started at line " + std::to_string(start_line) +
             ", column " + std::to_string(start_col));
      const unsigned char c = (unsigned char)text_[pos_];
      if (c == '"') {
        ++pos_;
        return out;
      }
      if (c < 0x20) fail("expected a string character (control characters must be escaped)");
      if (c != '\\') {
        out += (char)c;
        ++pos_;
        continue;
      }
      ++pos_;  // backslash
      const char e = peek();
      switch (e) {
        case '"': out += '"'; break;
        case '\\': out += '\\'; break;
        case '/': out += '/'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'u': {
          const size_t esc_col = column() - 1;  // column of the backslash
          ++pos_;
          uint32_t cp = parse_hex4();
          if (cp >= 0xDC00 && cp <= 0xDFFF)
            fail_at(line_, esc_col, "unexpected low surrogate \\u" + hex4(cp) +
                                        " without a high surrogate before it");
          if (cp >= 0xD800 && cp <= 0xDBFF) {
            // UTF-16 surrogate pair: \uD83D\uDE00 -> U+1F600.
            if (text_.substr(pos_, 2) != "\\u")
              fail("expected a \\uDC00-\\uDFFF low surrogate after \\u" + hex4(cp));
            pos_ += 2;
            uint32_t lo = parse_hex4();
            if (lo < 0xDC00 || lo > 0xDFFF)
              fail_at(line_, column() - 6,
                      "expected a \\uDC00-\\uDFFF low surrogate after \\u" + hex4(cp) +
                          ", found \\u" + hex4(lo));
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
          }
          append_utf8(out, cp);
          continue;  // pos_ already past the digits
        }
        default:
          fail("expected an escape (\\\" \\\\ \\/ \\b \\f \\n \\r \\t \\uXXXX) after '\\'");
      }
      ++pos_;
    }
  }

  static std::string hex4(uint32_t v) {
    char buf[8];
    std::snprintf(buf, sizeof buf, "%04X", v);
    return buf;
  }

  // number = -? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?
  Json parse_number() {
    const size_t start = pos_, start_col = column();
    if (peek() == '-') {
      ++pos_;
      if (match_word("Infinity")) return Json(-std::numeric_limits<double>::infinity());
    }
    auto digits = [&] {
      size_t n = 0;
      while (!at_end() && text_[pos_] >= '0' && text_[pos_] <= '9') ++pos_, ++n;
      return n;
    };
    if (peek() == '0') {
      ++pos_;
      if (peek() >= '0' && peek() <= '9')
        fail("expected '.', 'e' or the end of the number after a leading 0");
    } else if (digits() == 0) {
      fail("expected a digit");
    }
    bool is_integer = true;
    if (peek() == '.') {
      ++pos_;
      is_integer = false;
      if (digits() == 0) fail("expected a digit after '.'");
    }
    if (peek() == 'e' || peek() == 'E') {
      ++pos_;
      is_integer = false;
      if (peek() == '+' || peek() == '-') ++pos_;
      if (digits() == 0) fail("expected a digit in the exponent");
    }
    const char* first = text_.data() + start;
    const char* last = text_.data() + pos_;
    if (is_integer) {
      int64_t i = 0;
      auto r = std::from_chars(first, last, i);
      if (r.ec == std::errc() && r.ptr == last) return Json((long long)i);
      // Beyond int64: fall through and keep it as the nearest double.
    }
    double d = 0.0;
    auto r = std::from_chars(first, last, d);
    if (r.ec == std::errc::result_out_of_range) {
      // Too small underflows to a signed zero; too large is an error (Python would give inf).
      const std::string_view s(first, last - first);
      const size_t e = s.find_first_of("eE");
      if (e != std::string_view::npos && s[e + 1] == '-') return Json(s[0] == '-' ? -0.0 : 0.0);
      fail_at(line_, start_col,
              "number " + std::string(s) + " is out of the range of a double");
    }
    return Json(d);
  }
};

Json Json::parse(std::string_view text, std::string_view source_name) {
  return JsonParser(text, source_name).parse_document();
}

// ---- construction -------------------------------------------------------------------------------

namespace {
int64_t checked_int64(unsigned long long i) {
  if (i > (unsigned long long)std::numeric_limits<int64_t>::max())
    throw std::runtime_error("[json] integer " + std::to_string(i) + " does not fit in int64");
  return (int64_t)i;
}
}  // namespace

Json::Json(unsigned long i) : type_(Type::Int), int_(checked_int64(i)) {}
Json::Json(unsigned long long i) : type_(Type::Int), int_(checked_int64(i)) {}

Json::Json(Object o) : type_(Type::Object) {
  std::unordered_set<std::string_view> seen;
  for (const auto& [key, value] : o)
    if (!seen.insert(key).second) throw std::runtime_error("[json] duplicate key '" + key + "'");
  object_ = std::move(o);
}

// ---- accessors ----------------------------------------------------------------------------------

const std::string& Json::source() const {
  static const std::string kBuiltInCode = "<value>";
  return source_ ? *source_ : kBuiltInCode;
}

std::string Json::where() const {
  if (line_ == 0) return "";
  return " (at line " + std::to_string(line_) + ", column " + std::to_string(column_) + ")";
}

const char* Json::type_name() const {
  switch (type_) {
    case Type::Null: return "null";
    case Type::Bool: return "bool";
    case Type::Int: return "integer";
    case Type::Double: return "number";
    case Type::String: return "string";
    case Type::Array: return "array";
    case Type::Object: return "object";
  }
  return "?";
}

void Json::type_error(const char* expected) const {
  std::string found = type_name();
  if (!is_array() && !is_object() && !is_null()) {
    std::string text = dump();
    if (text.size() > 40) text = text.substr(0, 37) + "...";
    found += " " + text;
  }
  throw std::runtime_error("[json] " + source() + ": expected " + expected + " but found " +
                           found + where());
}

bool Json::get_bool() const {
  if (!is_bool()) type_error("a bool");
  return bool_;
}

int64_t Json::get_int() const {
  if (is_int()) return int_;
  // 2^63 is exactly representable; the valid range is [-2^63, 2^63).
  if (is_double() && std::trunc(double_) == double_ && double_ >= -9223372036854775808.0 &&
      double_ < 9223372036854775808.0)
    return (int64_t)double_;
  type_error("an integer");
}

double Json::get_double() const {
  if (is_double()) return double_;
  if (is_int()) return (double)int_;
  type_error("a number");
}

const std::string& Json::get_string() const {
  if (!is_string()) type_error("a string");
  return string_;
}

const Json* Json::find(std::string_view key) const {
  if (!is_object()) return nullptr;
  for (const auto& [k, v] : object_)
    if (k == key) return &v;
  return nullptr;
}

bool Json::contains(std::string_view key) const { return find(key) != nullptr; }

const Json& Json::at(std::string_view key) const {
  if (!is_object()) type_error(("an object with key '" + std::string(key) + "'").c_str());
  if (const Json* v = find(key)) return *v;
  std::string msg = "[json] " + source() + ": missing key '" + std::string(key) + "'";
  if (line_ != 0)
    msg += " (object at line " + std::to_string(line_) + ", column " + std::to_string(column_) +
           ")";
  throw std::runtime_error(msg);
}

Json& Json::at(std::string_view key) {
  return const_cast<Json&>(static_cast<const Json&>(*this).at(key));
}

const Json::Object& Json::items() const {
  if (!is_object()) type_error("an object");
  return object_;
}

Json& Json::set(std::string key, Json value) {
  if (is_null()) type_ = Type::Object;  // a default-constructed Json becomes an object
  if (!is_object()) type_error("an object");
  for (auto& [k, v] : object_)
    if (k == key) return v = std::move(value);
  object_.emplace_back(std::move(key), std::move(value));
  return object_.back().second;
}

const Json::Array& Json::elements() const {
  if (!is_array()) type_error("an array");
  return array_;
}

const Json& Json::at(size_t i) const {
  if (!is_array()) type_error("an array");
  if (i >= array_.size())
    throw std::runtime_error("[json] " + source() + ": index " + std::to_string(i) +
                             " is out of range for an array of " + std::to_string(array_.size()) +
                             " elements" + where());
  return array_[i];
}

Json& Json::push_back(Json value) {
  if (is_null()) type_ = Type::Array;  // a default-constructed Json becomes an array
  if (!is_array()) type_error("an array");
  array_.push_back(std::move(value));
  return array_.back();
}

size_t Json::size() const {
  if (is_array()) return array_.size();
  if (is_object()) return object_.size();
  type_error("an array or an object");
}

bool operator==(const Json& a, const Json& b) {
  if (a.type_ != b.type_) return false;
  switch (a.type_) {
    case Json::Type::Null: return true;
    case Json::Type::Bool: return a.bool_ == b.bool_;
    case Json::Type::Int: return a.int_ == b.int_;
    case Json::Type::Double:  // NaN equals NaN here, so a round trip of a NaN compares equal
      return a.double_ == b.double_ || (std::isnan(a.double_) && std::isnan(b.double_));
    case Json::Type::String: return a.string_ == b.string_;
    case Json::Type::Array: return a.array_ == b.array_;
    case Json::Type::Object:
      if (a.object_.size() != b.object_.size()) return false;
      for (const auto& [key, value] : a.object_) {
        const Json* other = b.find(key);
        if (!other || !(value == *other)) return false;
      }
      return true;
  }
  return false;
}

// ---- serializer ---------------------------------------------------------------------------------

namespace {

void write_json(std::string& out, const Json& v, int indent, int level) {
  auto newline = [&](int lvl) {
    if (indent < 0) return;
    out += '\n';
    out.append((size_t)(indent * lvl), ' ');
  };
  switch (v.type()) {
    case Json::Type::Null: out += "null"; return;
    case Json::Type::Bool: out += v.get_bool() ? "true" : "false"; return;
    case Json::Type::Int: out += std::to_string(v.get_int()); return;
    case Json::Type::Double: append_double(out, v.get_double()); return;
    case Json::Type::String: append_quoted(out, v.get_string()); return;
    case Json::Type::Array: {
      const auto& elements = v.elements();
      if (elements.empty()) { out += "[]"; return; }
      out += '[';
      for (size_t i = 0; i < elements.size(); ++i) {
        if (i) out += ',';
        newline(level + 1);
        write_json(out, elements[i], indent, level + 1);
      }
      newline(level);
      out += ']';
      return;
    }
    case Json::Type::Object: {
      const auto& members = v.items();
      if (members.empty()) { out += "{}"; return; }
      out += '{';
      for (size_t i = 0; i < members.size(); ++i) {
        if (i) out += ',';
        newline(level + 1);
        append_quoted(out, members[i].first);
        out += indent < 0 ? ":" : ": ";
        write_json(out, members[i].second, indent, level + 1);
      }
      newline(level);
      out += '}';
      return;
    }
  }
}

}  // namespace

std::string Json::dump(int indent) const {
  std::string out;
  write_json(out, *this, indent, 0);
  return out;
}

}  // namespace sg
