-- woman: gender from partner signals, else from browsing.
-- 1. The newest partner_signal carrying a gender attribute decides
--    ("f"/"female" -> woman; anything else -> not woman).
-- 2. Without one: visits to women's fashion, beauty and pregnancy sites on
--    at least 3 distinct days within 60 days.
local WOMEN_SITES = filter {
  type = "page_view",
  within_days = 60,
  host = { "woman.ru", "cosmo.ru", "elle.ru", "marieclaire.ru", "babyblog.ru", "mamsy.ru",
           "letoile.ru", "goldapple.ru" },
}
local WOMEN_SECTIONS = filter {
  type = "page_view",
  within_days = 60,
  url_contains = { "/women/", "/zhenshchinam", "/womens-", "/beremennost", "/pregnancy" },
}

return segment_script {
  name = "woman",
  version = "1.0.0",
  description = "Gender female: partner signal first, browsing otherwise",
  segments = { "woman" },
  evaluate = function(user)
    local gender = user:attr("gender", { type = "partner_signal" })
    if gender ~= nil then
      gender = string.lower(gender)
      if gender == "f" or gender == "female" then return "woman" end
      return nil
    end
    local days = user:distinct("day", WOMEN_SITES)
    if days < 3 then
      days = math.max(days, user:distinct("day", WOMEN_SECTIONS))
    end
    if days >= 3 then return { "woman" } end
    return {}
  end,
}
