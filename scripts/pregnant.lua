-- pregnant: pregnancy signals within the last 90 days.
-- A partner signal (life_stage = expecting / pregnancy = true) decides alone;
-- otherwise two signals from: pregnancy searches, pregnancy sites/sections,
-- purchases in maternity categories.
local PARTNER = filter {
  type = "partner_signal",
  within_days = 90,
  attr = { life_stage = { "expecting", "pregnant" } },
}
local PARTNER_FLAG = filter { type = "partner_signal", within_days = 90, attr = { pregnancy = "true" } }
local SEARCHES = filter {
  type = "search",
  within_days = 90,
  query_contains = { "беременн", "тест на беремен", "токсикоз", "роддом", "узи 12 недель",
                     "pregnan", "due date" },
}
local SITES = filter {
  type = "page_view",
  within_days = 90,
  host = { "babyblog.ru", "beremennost.net", "whattoexpect.com" },
}
local SECTIONS = filter {
  type = "page_view",
  within_days = 90,
  url_contains = { "/beremennost", "/pregnancy", "/maternity" },
}
local PURCHASES = filter {
  type = "purchase",
  within_days = 90,
  attr = { category = { "maternity", "pregnancy_test", "prenatal_vitamins" } },
}

return segment_script {
  name = "pregnant",
  version = "1.0.0",
  description = "Pregnancy signals within 90 days",
  segments = { "pregnant" },
  evaluate = function(user)
    if user:any(PARTNER) or user:any(PARTNER_FLAG) then return { "pregnant" } end
    local signals = user:count(SEARCHES) + user:count(SITES) + user:count(SECTIONS)
                    + 2 * user:count(PURCHASES)
    if signals >= 2 then return { "pregnant" } end
    return {}
  end,
}
