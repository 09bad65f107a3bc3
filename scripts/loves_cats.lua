-- loves_cats: the user keeps coming back to cat content.
-- Signal: at least 3 cat-related page views or searches within 30 days.
-- Filters are compiled once at load (filter{...}); within_days is relative
-- to the host's "now" at each evaluation.
local CAT_PAGES = filter {
  type = "page_view",
  within_days = 30,
  url_contains = { "/cats", "/cat/", "koshki", "kotiki", "koshka", "kitten", "catster" },
}
local CAT_SEARCHES = filter {
  type = "search",
  within_days = 30,
  query_contains = { "кошк", "кошек", "котён", "котен", "котик", "kitten", "cat food", "cats" },
}

return segment_script {
  name = "loves_cats",
  version = "1.2.0",
  description = "Three or more cat pages or cat searches within 30 days",
  segments = { "loves_cats" },
  evaluate = function(user)
    local n = user:count(CAT_PAGES)
    if n < 3 then n = n + user:count(CAT_SEARCHES) end
    if n >= 3 then return { "loves_cats" } end
    return {}
  end,
}
