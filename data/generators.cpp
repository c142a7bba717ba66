// data/generators.cpp — the story grammar and the arithmetic problem generator. See generators.h.
//
// Stories are built from "beats" (opening, detail, trigger, reaction, helper, resolution, ending,
// moral). Each beat is a template with {slots} filled from the story's cast; an unknown slot is a bug
// and throws, so no "{...}" can leak into the corpus.
#include "data/generators.h"

#include <cctype>
#include <climits>
#include <map>
#include <stdexcept>

namespace sg::data {

namespace {

template <class T>
const T& pick(Rng& rng, const std::vector<T>& v) {
  return v[rng.randint(v.size())];
}
bool coin(Rng& rng, double p) { return rng.uniform() < p; }

using Slots = std::map<std::string, std::string>;

// "{H} lost {his} {obj}." -> "Lily lost her ball."
std::string render(const std::string& tmpl, const Slots& slots) {
  std::string out;
  for (size_t i = 0; i < tmpl.size(); ++i) {
    if (tmpl[i] != '{') {
      out += tmpl[i];
      continue;
    }
    const size_t close = tmpl.find('}', i);
    if (close == std::string::npos) throw std::logic_error("[generators] unclosed slot in template: " + tmpl);
    const std::string key = tmpl.substr(i + 1, close - i - 1);
    auto it = slots.find(key);
    if (it == slots.end()) throw std::logic_error("[generators] unknown slot {" + key + "} in template: " + tmpl);
    out += it->second;
    i = close;
  }
  return out;
}

// ---- the cast and the world ----------------------------------------------------------------------

const std::vector<std::string> kGirlNames = {"Lily", "Mia",    "Emma",  "Sara",  "Anna",  "Lucy", "Zoe",
                                             "Ella", "Ruby",   "Amy",   "Kate",  "Rosa",  "Nina", "Maya",
                                             "Ivy",  "Sophie", "Grace", "Chloe", "Daisy", "Molly"};
const std::vector<std::string> kBoyNames = {"Tom",  "Ben",   "Max",   "Sam",  "Leo",  "Jack", "Tim",
                                            "Finn", "Jake",  "Noah",  "Luke", "Owen", "Eli",  "Adam",
                                            "Ryan", "Oscar", "Henry", "Theo", "Milo", "Dan"};
const std::vector<std::string> kAnimalNames = {"Pip",    "Bongo", "Fluffy",  "Coco",  "Rusty",  "Sunny",
                                               "Bubble", "Hoppy", "Ginger",  "Patch", "Peanut", "Ziggy",
                                               "Pebble", "Snowy", "Biscuit", "Button"};
const std::vector<std::string> kAnimalKinds = {"bunny", "puppy",    "kitten",   "bear", "duck", "fox",
                                               "mouse", "squirrel", "frog",     "bird", "owl",  "pig",
                                               "lamb",  "turtle",   "elephant", "dog",  "cat",  "monkey"};
const std::vector<std::string> kSizes = {"little", "small", "young",   "happy",    "curious", "brave",
                                         "shy",    "kind",  "playful", "cheerful", "clever",  "friendly"};
const std::vector<std::string> kHomes = {"near a big forest", "in a little village",           "on a sunny hill",
                                         "by a quiet lake",   "in a small house by the woods", "on a busy farm",
                                         "in a cozy town",    "next to a green meadow"};
const std::vector<std::string> kPlaces = {"park",  "beach", "farm", "playground", "lake",   "pond",
                                          "river", "zoo",   "hill", "field",      "garden", "meadow"};
const std::vector<std::string> kActivities = {
    "play in the sun",    "draw pictures",      "sing songs",          "run fast",
    "jump in puddles",    "read books",         "build with blocks",   "dance",
    "look at the stars",  "pick flowers",       "splash in the water", "climb trees",
    "play hide and seek", "help in the garden", "watch the clouds",    "collect pretty rocks"};
const std::vector<std::string> kColors = {"red",   "blue", "green", "yellow", "pink", "purple",
                                          "shiny", "soft", "big",   "small",  "new",  "favorite"};
const std::vector<std::string> kHideSpots = {"under a big bush",       "behind a tree",     "under the bench",
                                             "next to a rock",         "in the tall grass", "behind the fence",
                                             "under a pile of leaves", "near the old well"};
const std::vector<std::string> kFoods = {"apples", "cookies", "berries", "sandwiches", "carrots",
                                         "bread",  "cheese",  "cake",    "grapes",     "muffins"};
const std::vector<std::string> kHarmless = {
    "a little cat", "the wind in the trees", "a friendly owl",         "an old box",
    "a small frog", "a sleepy dog",          "a branch on the window", "a tiny hedgehog"};
const std::vector<std::string> kParents = {"Mom", "Dad", "Grandma", "Grandpa"};

// Objects and which problems they can have.
struct StoryObject {
  std::string noun;
  bool can_lose, can_stick, can_break;
};
const std::vector<StoryObject> kObjects = {
    {"ball", true, true, false},     {"kite", false, true, true},        {"teddy bear", true, false, false},
    {"toy car", true, false, true},  {"hat", true, true, false},         {"boat", false, false, true},
    {"doll", true, false, true},     {"book", true, false, false},       {"shell", true, false, false},
    {"balloon", false, true, false}, {"drum", false, false, true},       {"train", true, false, true},
    {"scarf", true, true, false},    {"paper plane", false, true, true}, {"robot", true, false, true},
    {"frisbee", true, true, false}};

struct Character {
  std::string name;  // "Lily", "Pip", "Mom"
  std::string kind;  // "girl", "bunny" ("" for a parent)
  bool female = false;
  bool animal = false;
};

Character make_child_or_animal(Rng& rng, const std::string& avoid_name) {
  Character c;
  for (int tries = 0; tries < 100; ++tries) {
    c.animal = coin(rng, 0.35);
    c.female = coin(rng, 0.5);
    if (c.animal) {
      c.name = pick(rng, kAnimalNames);
      c.kind = pick(rng, kAnimalKinds);
    } else {
      c.name = pick(rng, c.female ? kGirlNames : kBoyNames);
      c.kind = c.female ? "girl" : "boy";
    }
    if (c.name != avoid_name) break;
  }
  return c;
}

void add_pronouns(Slots& s, const std::string& prefix, const Character& c) {
  s[prefix + "he"] = c.female ? "she" : "he";
  s[prefix + "He"] = c.female ? "She" : "He";
  s[prefix + "him"] = c.female ? "her" : "him";
  s[prefix + "his"] = c.female ? "her" : "his";
  s[prefix + "His"] = c.female ? "Her" : "His";
  s[prefix + "himself"] = c.female ? "herself" : "himself";
}

enum class Problem { lost, stuck, broken, rain, hungry, scared, lonely };
enum class Helper { none, friend_, parent };

// ---- the beats -----------------------------------------------------------------------------------

const std::vector<std::string> kOpenings = {
    "Once upon a time, there was a {size} {kind} named {H}.",
    "There once was a {size} {kind} called {H} who lived {home}.",
    "{H} was a {size} {kind} who loved to {activity}.",
    "Once upon a time, {home}, lived a {size} {kind} named {H}.",
    "Long ago, there was a {size} {kind} named {H} who lived {home}.",
};
const std::vector<std::string> kDetails = {
    "{He} loved to {activity}.",
    "Every day, {he} went to the {place} to play.",
    "{He} liked to {activity} with {his} friends.",
    "{His} favorite place in the whole world was the {place}.",
};
const std::vector<std::string> kObjectDetails = {
    "{He} had a {objd} that {he} loved very much.",
    "{His} favorite toy was a {objd}.",
    "{He} took {his} {objd} everywhere {he} went.",
};

struct ProblemText {
  std::vector<std::string> triggers, reactions, with_helper, alone, morals;
};

const std::map<Problem, ProblemText>& problem_texts() {
  static const std::map<Problem, ProblemText> texts = {
      {Problem::lost,
       {{"One day, {H} went to the {place} with {his} {objd}. When it was time to go home, the {obj} was gone!",
         "One morning, {H} could not find {his} {objd} anywhere.",
         "One day, {H} was playing at the {place} and lost {his} {objd}."},
        {"{H} felt very sad.", "{H} looked and looked, but the {obj} was not there.",
         "{He} started to cry because {he} missed {his} {obj}."},
        {"{F} and {H} looked everywhere. At last, they found the {obj} {hide}.",
         "{F} said, \"Let's look together!\" They looked {hide} and there it was.",
         "{F} had a good idea and looked {hide}. {fHe} found the {obj}!"},
        {"{H} took a deep breath and thought hard. Then {he} remembered where {he} had played, and found the {obj} "
         "{hide}.",
         "{H} did not give up. {He} looked {hide} and found the {obj} at last."},
        {"From that day on, {H} always kept {his} {obj} close.", "{H} learned to put {his} toys away after playing."}}},
      {Problem::stuck,
       {{"One windy day at the {place}, a strong wind blew {his} {objd} up into a tall tree.",
         "One day, {H} threw {his} {objd} too high, and it got stuck in a tree.",
         "While {H} was playing at the {place}, {his} {objd} got stuck high in a tree."},
        {"{H} could not reach it.", "{H} jumped and jumped, but the tree was too tall.",
         "{H} felt sad and did not know what to do."},
        {"{F} found a long stick and gently pushed the {obj} down.",
         "{F} shook the branch until the {obj} fell down into {H}'s arms.",
         "{F} climbed onto a big rock, reached up high, and got the {obj} back."},
        {"{H} did not give up. {He} climbed onto a big rock, reached up high, and pulled the {obj} free.",
         "{H} waited for the wind, and soon the {obj} fell down by itself."},
        {"After that, {H} played with {his} {obj} far away from the trees.", "{H} learned to never give up."}}},
      {Problem::broken,
       {{"One day, {his} {objd} fell on the ground and broke.",
         "While {H} was playing, {he} stepped on {his} {objd} by mistake, and it broke.",
         "One day at the {place}, {his} {objd} hit a rock and broke."},
        {"{H} felt very sad.", "{H} started to cry.", "{H} did not know how to fix it."},
        {"{F} said, \"Don't worry, we can fix it!\" Together they fixed the {obj} with some glue.",
         "{F} got some tape, and they fixed the {obj} together.",
         "{F} helped {H} fix the {obj}, and soon it was as good as new."},
        {"{H} found some glue and fixed the {obj} all by {himself}.",
         "{H} was patient. {He} put the pieces back together, and the {obj} worked again."},
        {"{H} learned to be more careful with {his} toys.", "From that day on, {H} took good care of {his} {obj}."}}},
      {Problem::rain,
       {{"One day, {H} was playing at the {place} when dark clouds came and it began to rain.",
         "One afternoon, {H} went to the {place}, but soon it started to rain very hard."},
        {"{H} was getting all wet.", "{H} was cold and did not like the rain.", "{H} felt cold and sad."},
        {"{F} held a big leaf over {H}, and they ran home together.",
         "{F} said, \"Come with me!\" They waited under a big tree until the rain stopped.",
         "{F} shared {fhis} umbrella, and they walked home together."},
        {"{H} found a dry spot under a big tree and waited until the sun came out again.",
         "{H} ran home fast and dried off by the warm fire."},
        {"From then on, {H} always looked at the sky before going out.",
         "{H} learned that the rain always stops in the end."}}},
      {Problem::hungry,
       {{"After a long day of playing at the {place}, {H} felt very hungry, but {he} had no food.",
         "One day, {H} was very hungry, but there was nothing to eat."},
        {"{His} tummy made a loud noise.", "{H} felt tired and hungry.", "{H} sat down and felt sad."},
        {"{F} shared {fhis} {food} with {H}.", "{F} said, \"You can have some of my {food}!\" They ate together.",
         "{F} brought some {food} for {H}, and it was yummy."},
        {"{H} found a bush full of sweet berries and ate until {he} was full.",
         "{H} went home and found some {food} on the table."},
        {"After that, {H} always took a snack along.", "{H} never forgot to eat before playing again."}}},
      {Problem::scared,
       {{"That night, {H} heard a strange noise outside and felt scared.",
         "In the {place}, {H} saw a big dark shadow and felt scared.",
         "One evening, {H} heard a loud bump and hid under {his} blanket."},
        {"{H} wanted to run away.", "{His} heart was beating fast.", "{H} did not want to look."},
        {"{F} turned on a light, and they saw that it was only {harmless}.",
         "{F} held {H}'s hand, and they looked together. It was only {harmless}."},
        {"{H} was brave and took a closer look. It was only {harmless}.",
         "{H} counted to three and looked. It was just {harmless}."},
        {"{H} learned that there was nothing to be afraid of.", "After that, {H} was not scared of noises anymore."}}},
      {Problem::lonely,
       {{"One day, {H} went to the {place}, but there was no one to play with.",
         "{H} felt lonely because {he} had no friends to play with."},
        {"{H} sat on a bench and felt sad.", "{H} played alone, but it was not much fun."},
        {"Then {F}, a {fsize} {fkind}, came by and asked, \"Can I play with you?\"",
         "Just then, a {fsize} {fkind} named {F} came over and said, \"Hello! Do you want to play?\""},
        {"{H} started to sing, and soon a group of birds came to sing with {him}.",
         "{H} smiled at a {fsize} {fkind} nearby, and they soon played together."},
        {"{H} learned that it is easy to make a new friend.", "From that day on, {H} was never lonely again."}}},
  };
  return texts;
}

const std::vector<std::string> kFriendIntros = {
    "Just then, {his} friend {F}, a {fsize} {fkind}, came by.",
    "{H}'s friend {F} saw that something was wrong.",
    "Then {F}, a {fsize} {fkind}, came to help.",
};
const std::vector<std::string> kParentIntros = {
    "{His} {parent_lower} came over and asked, \"What is wrong, {H}?\"",
    "{H} ran to {F} for help.",
    "{F} saw {H} and came to help.",
};
const std::vector<std::string> kEndingsHelper = {
    "{H} hugged {F} and said, \"Thank you!\"",
    "\"Thank you, {F}!\" said {H} with a big smile.",
    "{H} and {F} played together until the sun went down.",
    "{H} was very happy, and {F} was happy too.",
};
const std::vector<std::string> kEndingsAlone = {
    "{H} felt proud of {himself}.",
    "{H} smiled and went home happy.",
    "{H} was very happy again.",
};
const std::vector<std::string> kMoralsHelper = {
    "From that day on, {H} and {F} were best friends.",
    "{H} learned that friends help each other.",
};

}  // namespace

int count_sentences(const std::string& text) {
  int n = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c != '.' && c != '!' && c != '?') continue;
    size_t j = i + 1;
    if (j < text.size() && text[j] == '"') ++j;
    if (j >= text.size()) {
      ++n;
      continue;
    }
    if (!std::isspace((unsigned char)text[j])) continue;
    while (j < text.size() && std::isspace((unsigned char)text[j])) ++j;
    if (j >= text.size() || std::isupper((unsigned char)text[j]) || text[j] == '"') ++n;
  }
  return n;
}

std::string generate_story(Rng& rng) {
  // 1. the cast and the world
  const Character hero = make_child_or_animal(rng, "");
  Slots s;
  s["H"] = hero.name;
  s["kind"] = hero.kind;
  s["size"] = pick(rng, kSizes);
  s["home"] = pick(rng, kHomes);
  s["place"] = pick(rng, kPlaces);
  s["activity"] = pick(rng, kActivities);
  s["hide"] = pick(rng, kHideSpots);
  s["food"] = pick(rng, kFoods);
  s["harmless"] = pick(rng, kHarmless);
  add_pronouns(s, "", hero);

  const Problem problem = (Problem)rng.randint(7);
  const bool needs_object = problem == Problem::lost || problem == Problem::stuck || problem == Problem::broken;
  if (needs_object) {
    StoryObject obj;
    do obj = pick(rng, kObjects);
    while (!((problem == Problem::lost && obj.can_lose) || (problem == Problem::stuck && obj.can_stick) ||
             (problem == Problem::broken && obj.can_break)));
    s["obj"] = obj.noun;
    s["objd"] = pick(rng, kColors) + " " + obj.noun;
  }

  Helper helper = Helper::none;
  const double r = rng.uniform();
  if (problem == Problem::lonely)
    helper = r < 0.7 ? Helper::friend_ : Helper::none;
  else
    helper = r < 0.45 ? Helper::friend_ : (r < 0.75 ? Helper::parent : Helper::none);
  Character helper_c;
  if (helper == Helper::friend_) {
    helper_c = make_child_or_animal(rng, hero.name);
  } else if (helper == Helper::parent) {
    helper_c.name = pick(rng, kParents);
    helper_c.female = helper_c.name == "Mom" || helper_c.name == "Grandma";
    std::string lower = helper_c.name;
    lower[0] = (char)std::tolower((unsigned char)lower[0]);
    s["parent_lower"] = lower;
  } else if (problem == Problem::lonely) {
    helper_c = make_child_or_animal(rng, hero.name);  // the new friend of the "alone" resolution
  }
  s["F"] = helper_c.name;
  s["fkind"] = helper_c.kind;
  s["fsize"] = pick(rng, kSizes);
  add_pronouns(s, "f", helper_c);

  // 2. the beats, in story order; optional ones may be dropped to keep 3-8 sentences
  const ProblemText& pt = problem_texts().at(problem);
  struct Beat {
    std::string text;
    bool optional;
  };
  std::vector<Beat> beats;
  const int opening = (int)rng.randint(kOpenings.size());
  beats.push_back({render(kOpenings[opening], s), false});
  if (coin(rng, 0.5)) {
    int d = (int)rng.randint(kDetails.size());
    if (opening == 2 && d == 0) d = 1;  // the opening already said what the hero loves
    beats.push_back({render(kDetails[d], s), true});
  }
  if (needs_object && coin(rng, 0.6)) beats.push_back({render(pick(rng, kObjectDetails), s), true});
  beats.push_back({(coin(rng, 0.4) ? "\n\n" : "") + render(pick(rng, pt.triggers), s), false});
  if (coin(rng, 0.6)) beats.push_back({render(pick(rng, pt.reactions), s), true});
  if (helper == Helper::friend_ && problem != Problem::lonely)
    beats.push_back({render(pick(rng, kFriendIntros), s), false});
  if (helper == Helper::parent) {
    const auto& intro = pick(rng, kParentIntros);
    beats.push_back({render(intro, s), false});
  }
  beats.push_back({render(pick(rng, helper == Helper::none ? pt.alone : pt.with_helper), s), false});
  if (coin(rng, 0.8))
    beats.push_back({render(pick(rng, helper == Helper::none ? kEndingsAlone : kEndingsHelper), s), true});
  if (coin(rng, 0.5)) {
    const bool friend_moral = helper == Helper::friend_ && coin(rng, 0.4);
    beats.push_back({render(friend_moral ? pick(rng, kMoralsHelper) : pick(rng, pt.morals), s), true});
  }

  auto join = [&]() {
    std::string out;
    for (const Beat& b : beats) {
      if (!out.empty() && b.text.rfind("\n\n", 0) != 0) out += ' ';
      out += b.text;
    }
    return out;
  };
  std::string story = join();
  while (count_sentences(story) > 8) {  // drop the last optional beat
    for (size_t i = beats.size(); i-- > 0;) {
      if (beats[i].optional) {
        beats.erase(beats.begin() + (long)i);
        break;
      }
    }
    story = join();
  }
  return story;
}

std::string generate_story_corpus(uint64_t seed, int n_stories) {
  Rng rng(seed);
  std::string out;
  for (int i = 0; i < n_stories; ++i) {
    out += generate_story(rng);
    out += "\n<|endoftext|>\n";
  }
  return out;
}

// ---- arithmetic ----------------------------------------------------------------------------------

namespace {

// Recursive descent over "expr := term (('+'|'-') term)*, term := factor ('*' factor)*,
// factor := ['-'] number | '(' expr ')'", recording "a op b = c" for each operation.
struct ExprParser {
  const std::string& s;
  size_t i = 0;
  std::vector<std::string>* steps;

  [[noreturn]] void fail(const std::string& what) const {
    throw std::invalid_argument("[evaluate_expression] " + what + " at position " + std::to_string(i) + " in \"" + s +
                                "\"");
  }
  void skip() {
    while (i < s.size() && s[i] == ' ') ++i;
  }
  int64_t apply(int64_t a, char op, int64_t b) {
    int64_t v = 0;
    bool overflow = op == '+'   ? __builtin_add_overflow(a, b, &v)
                    : op == '-' ? __builtin_sub_overflow(a, b, &v)
                                : __builtin_mul_overflow(a, b, &v);
    if (overflow) fail("int64 overflow");
    if (steps) steps->push_back(std::to_string(a) + " " + op + " " + std::to_string(b) + " = " + std::to_string(v));
    return v;
  }
  int64_t factor() {
    skip();
    if (i < s.size() && s[i] == '(') {
      ++i;
      const int64_t v = expr();
      skip();
      if (i >= s.size() || s[i] != ')') fail("expected ')'");
      ++i;
      return v;
    }
    bool neg = false;
    if (i < s.size() && s[i] == '-') {
      neg = true;
      ++i;
    }
    if (i >= s.size() || !std::isdigit((unsigned char)s[i])) fail("expected a number");
    int64_t v = 0;
    while (i < s.size() && std::isdigit((unsigned char)s[i])) {
      if (v > (INT64_MAX - 9) / 10) fail("number too large");
      v = v * 10 + (s[i++] - '0');
    }
    return neg ? -v : v;
  }
  int64_t term() {
    int64_t v = factor();
    for (skip(); i < s.size() && s[i] == '*'; skip()) {
      ++i;
      v = apply(v, '*', factor());
    }
    return v;
  }
  int64_t expr() {
    int64_t v = term();
    for (skip(); i < s.size() && (s[i] == '+' || s[i] == '-'); skip()) {
      const char op = s[i++];
      v = apply(v, op, term());
    }
    return v;
  }
};

struct Person {
  std::string name;
  bool female;
};
Person pick_person(Rng& rng, const std::string& avoid = "") {
  Person p;
  do {
    p.female = coin(rng, 0.5);
    p.name = pick(rng, p.female ? kGirlNames : kBoyNames);
  } while (p.name == avoid);
  return p;
}

const std::vector<std::string> kItems = {"apples",   "stickers", "marbles", "cookies", "books",    "pencils",
                                         "balloons", "shells",   "cards",   "stamps",  "toy cars", "flowers",
                                         "eggs",     "candies",  "coins",   "crayons", "buttons",  "rocks"};
const std::vector<std::string> kContainers = {"bags", "boxes", "packs", "baskets", "jars"};

// Range of the small numbers used at each difficulty.
int64_t small_number(Rng& rng, int difficulty, bool factor) {
  static const int64_t add_max[5] = {0, 20, 30, 50, 100};
  static const int64_t mul_max[5] = {0, 5, 9, 12, 15};
  const int64_t hi = factor ? mul_max[difficulty] : add_max[difficulty];
  return 2 + (int64_t)rng.randint((uint64_t)(hi - 1));  // 2..hi
}

void check_difficulty(int difficulty, const char* who) {
  if (difficulty < 1 || difficulty > 4)
    throw std::invalid_argument(std::string("[") + who + "] difficulty must be 1..4, got " +
                                std::to_string(difficulty));
}

}  // namespace

int64_t evaluate_expression(const std::string& expr, std::vector<std::string>* steps) {
  ExprParser p{expr, 0, steps};
  const int64_t v = p.expr();
  p.skip();
  if (p.i != expr.size()) p.fail("unexpected character '" + std::string(1, expr[p.i]) + "'");
  return v;
}

ArithmeticProblem generate_expression_problem(Rng& rng, int difficulty) {
  check_difficulty(difficulty, "generate_expression_problem");
  static const int n_ops_of[5] = {0, 1, 2, 3, 4};
  for (;;) {
    const int n_ops = n_ops_of[difficulty];
    std::vector<std::string> nums;
    std::vector<char> ops;
    for (int k = 0; k < n_ops; ++k) {
      const char op = difficulty == 1 ? (coin(rng, 0.5) ? '+' : '-') : "+-*"[rng.randint(3)];
      ops.push_back(op);
    }
    for (int k = 0; k <= n_ops; ++k) {
      const bool is_factor = (k > 0 && ops[k - 1] == '*') || (k < n_ops && ops[k] == '*');
      nums.push_back(std::to_string(small_number(rng, difficulty, is_factor)));
    }
    // From difficulty 3, one random run of >= 2 numbers (not all of them) goes in parentheses.
    int open = -1, close = -1;
    if (difficulty >= 3 && n_ops >= 2) {
      open = (int)rng.randint((uint64_t)n_ops);                       // 0..n_ops-1
      close = open + 1 + (int)rng.randint((uint64_t)(n_ops - open));  // open+1..n_ops
      if (open == 0 && close == n_ops) close = n_ops - 1;
    }
    std::string e;
    for (int k = 0; k <= n_ops; ++k) {
      if (k == open) e += "(";
      e += nums[k];
      if (k == close) e += ")";
      if (k < n_ops) e += std::string(" ") + ops[k] + " ";
    }
    std::vector<std::string> steps;
    const int64_t v = evaluate_expression(e, &steps);
    bool ok = difficulty == 4 || v >= 0;
    for (const std::string& st : steps) ok = ok && (difficulty == 4 || st.find("= -") == std::string::npos);
    if (!ok || v > 5000 || v < -5000) continue;  // resample: keep answers small and, below 4, non-negative

    ArithmeticProblem p;
    p.difficulty = difficulty;
    p.word_problem = false;
    p.expression = e;
    p.value = v;
    p.answer = std::to_string(v);
    p.question = coin(rng, 0.5) ? e + " = ?" : "What is " + e + "?";
    for (const std::string& st : steps) p.worked_solution += st + ". ";
    p.worked_solution += "The answer is " + p.answer + ".";
    return p;
  }
}

ArithmeticProblem generate_word_problem(Rng& rng, int difficulty) {
  check_difficulty(difficulty, "generate_word_problem");
  const Person who = pick_person(rng);
  const Person other = pick_person(rng, who.name);
  const std::string He = who.female ? "She" : "He";
  const std::string him = who.female ? "her" : "him";
  const std::string items = pick(rng, kItems);
  const std::string box = pick(rng, kContainers);

  ArithmeticProblem p;
  p.difficulty = difficulty;
  p.word_problem = true;
  std::vector<std::string> sol;  // sentences of the worked solution
  int64_t total;
  std::string expr;
  bool expr_has_sum = false;  // top level of expr has + or - (needs parentheses before "* 2")
  if (difficulty >= 2 && coin(rng, 0.3)) {
    const int64_t a = small_number(rng, difficulty, true), b = small_number(rng, difficulty, true);
    total = a * b;
    expr = std::to_string(a) + " * " + std::to_string(b);
    p.question =
        who.name + " has " + std::to_string(a) + " " + box + " with " + std::to_string(b) + " " + items + " in each.";
    sol.push_back(who.name + " starts with " + std::to_string(a) + " * " + std::to_string(b) + " = " +
                  std::to_string(total) + " " + items + ".");
  } else {
    total = small_number(rng, difficulty, false);
    expr = std::to_string(total);
    p.question = who.name + " has " + std::to_string(total) + " " + items + ".";
    sol.push_back(who.name + " starts with " + std::to_string(total) + " " + items + ".");
  }

  const int n_steps = difficulty == 4 ? 3 + (int)rng.randint(2) : difficulty;
  const Slots names{{"He", He},       {"he", who.female ? "she" : "he"},
                    {"him", him},     {"his", who.female ? "her" : "his"},
                    {"items", items}, {"box", box},
                    {"O", other.name}};
  auto say = [&](const std::string& tmpl, int64_t b, int64_t c) {
    Slots sl = names;
    sl["b"] = std::to_string(b);
    sl["c"] = std::to_string(c);
    p.question += " " + render(tmpl, sl);
  };
  bool last_was_sub = false;
  int last_kind = -1;
  for (int k = 0; k < n_steps; ++k) {
    // step kinds: 0 add, 1 take away, 2 add groups (difficulty >= 2), 3 double (difficulty >= 3)
    const int n_kinds = difficulty == 1 ? 2 : difficulty == 2 ? 3 : 4;
    int kind = (int)rng.randint((uint64_t)n_kinds);
    if (kind == 1 && total < 3) kind = 0;
    if (kind == 3 && (total > 200 || last_kind == 3)) kind = 0;
    last_kind = kind;
    const int64_t before = total;
    last_was_sub = kind == 1;
    if (kind == 0) {
      static const std::vector<std::string> forms = {"{He} buys {b} more {items}.", "{O} gives {him} {b} {items}.",
                                                     "{He} finds {b} more {items}."};
      const int64_t b = small_number(rng, difficulty, false);
      total += b;
      say(pick(rng, forms), b, 0);
      expr += " + " + std::to_string(b);
      expr_has_sum = true;
      sol.push_back(std::to_string(before) + " + " + std::to_string(b) + " = " + std::to_string(total) + ".");
    } else if (kind == 1) {
      static const std::vector<std::string> forms = {"{He} gives {b} {items} to {O}.", "{He} loses {b} {items}.",
                                                     "{He} sells {b} {items}."};
      const int64_t b = 2 + (int64_t)rng.randint((uint64_t)std::min<int64_t>(before - 2, difficulty == 1 ? 19 : 59));
      total -= b;
      say(pick(rng, forms), b, 0);
      expr += " - " + std::to_string(b);
      expr_has_sum = true;
      sol.push_back(std::to_string(before) + " - " + std::to_string(b) + " = " + std::to_string(total) + ".");
    } else if (kind == 2) {
      static const std::vector<std::string> forms = {"{He} buys {b} {box} with {c} {items} in each.",
                                                     "{O} gives {him} {b} {box} of {items}, with {c} {items} in each."};
      const int64_t b = small_number(rng, difficulty, true), c = small_number(rng, difficulty, true);
      total += b * c;
      say(pick(rng, forms), b, c);
      expr += " + " + std::to_string(b) + " * " + std::to_string(c);
      expr_has_sum = true;
      sol.push_back(std::to_string(b) + " * " + std::to_string(c) + " = " + std::to_string(b * c) + " more " + items +
                    ". " + std::to_string(before) + " + " + std::to_string(b * c) + " = " + std::to_string(total) +
                    ".");
    } else {
      say("Then {he} doubles {his} {items}.", 0, 0);
      total *= 2;
      expr = (expr_has_sum ? "(" + expr + ")" : expr) + " * 2";
      expr_has_sum = false;
      sol.push_back(std::to_string(before) + " * 2 = " + std::to_string(total) + ".");
    }
  }
  p.question += " How many " + items + " does " + who.name + " have " + (last_was_sub ? "left?" : "now?");
  p.question[0] = (char)std::toupper((unsigned char)p.question[0]);
  p.value = total;
  p.answer = std::to_string(total);
  p.expression = expr;
  for (const std::string& st : sol) p.worked_solution += st + " ";
  p.worked_solution += "The answer is " + p.answer + ".";
  return p;
}

ArithmeticProblem generate_arithmetic(Rng& rng, int difficulty) {
  check_difficulty(difficulty, "generate_arithmetic");
  return coin(rng, 0.5) ? generate_word_problem(rng, difficulty) : generate_expression_problem(rng, difficulty);
}

// ---- answer extraction ---------------------------------------------------------------------------

namespace {

// A number starting at s[i] ('-'? digit (digit | ',' digit)* ('.' digit+)?). Returns false if there is
// none there; value empty when it is not an integer or does not fit int64.
bool parse_number_at(const std::string& s, size_t i, size_t& end, std::optional<int64_t>& value) {
  size_t j = i;
  bool neg = false;
  if (j < s.size() && (s[j] == '-' || s[j] == '+')) {
    neg = s[j] == '-';
    ++j;
  }
  if (j >= s.size() || !std::isdigit((unsigned char)s[j])) return false;
  int64_t v = 0;
  bool fits = true;
  while (j < s.size()) {
    if (std::isdigit((unsigned char)s[j])) {
      const int d = s[j] - '0';
      if (v > (INT64_MAX - d) / 10)
        fits = false;
      else
        v = v * 10 + d;
      ++j;
    } else if (s[j] == ',' && j + 1 < s.size() && std::isdigit((unsigned char)s[j + 1])) {
      ++j;
    } else {
      break;
    }
  }
  bool integer = true;
  if (j + 1 < s.size() && s[j] == '.' && std::isdigit((unsigned char)s[j + 1])) {
    ++j;
    while (j < s.size() && std::isdigit((unsigned char)s[j])) {
      if (s[j] != '0') integer = false;
      ++j;
    }
  }
  end = j;
  value = (fits && integer) ? std::optional<int64_t>(neg ? -v : v) : std::nullopt;
  return true;
}

// The first number in s[from, to); found=false if none.
std::optional<int64_t> first_number(const std::string& s, size_t from, size_t to, bool& found) {
  found = false;
  for (size_t i = from; i < to; ++i) {
    size_t end;
    std::optional<int64_t> v;
    if (std::isdigit((unsigned char)s[i]) || ((s[i] == '-' || s[i] == '+') && i + 1 < to)) {
      if (parse_number_at(s, i, end, v) && end <= to) {
        found = true;
        return v;
      }
    }
  }
  return std::nullopt;
}

size_t rfind_ci(const std::string& s, const std::string& needle) {
  if (needle.size() > s.size()) return std::string::npos;
  for (size_t i = s.size() - needle.size() + 1; i-- > 0;) {
    bool eq = true;
    for (size_t k = 0; k < needle.size() && eq; ++k)
      eq = std::tolower((unsigned char)s[i + k]) == std::tolower((unsigned char)needle[k]);
    if (eq) return i;
  }
  return std::string::npos;
}

}  // namespace

std::optional<int64_t> extract_final_answer(const std::string& c) {
  bool found = false;
  // 1. the last \boxed{...}
  size_t pos = c.rfind("\\boxed{");
  if (pos != std::string::npos) {
    const size_t open = pos + 7;
    const size_t close = c.find('}', open);
    if (close != std::string::npos) {
      auto v = first_number(c, open, close, found);
      if (found) return v;
    }
  }
  // 2. after the last "####"
  pos = c.rfind("####");
  if (pos != std::string::npos) {
    auto v = first_number(c, pos + 4, c.size(), found);
    if (found) return v;
  }
  // 3. after the last "answer"
  pos = rfind_ci(c, "answer");
  if (pos != std::string::npos) {
    auto v = first_number(c, pos + 6, c.size(), found);
    if (found) return v;
  }
  // 4. the last number in the text: walk back from its last digit over digits, ',' and '.'
  const size_t last = c.find_last_of("0123456789");
  if (last == std::string::npos) return std::nullopt;
  size_t start = last;
  while (start > 0 && (std::isdigit((unsigned char)c[start - 1]) || c[start - 1] == ',' || c[start - 1] == '.'))
    --start;
  while (!std::isdigit((unsigned char)c[start])) ++start;  // a leading ',' or '.'
  // a sign counts when it is not a binary operator ("x = -3" -> -3, but "10-3" -> 3)
  if (start > 0 && (c[start - 1] == '-' || c[start - 1] == '+') &&
      (start == 1 || !std::isalnum((unsigned char)c[start - 2])))
    --start;
  size_t end;
  std::optional<int64_t> v;
  parse_number_at(c, start, end, v);  // c[start] is a digit or a sign before one, so this finds a number
  return v;
}

}  // namespace sg::data
