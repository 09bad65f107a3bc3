-- tech_enthusiast: reads tech media and shops for gadgets.
-- Tech media on >= 5 distinct days within 30 days, or >= 3 gadget searches
-- plus at least one tech-media visit within 30 days.
local TECH_MEDIA = filter {
  type = { "page_view", "app_open" },
  within_days = 30,
  host = { "habr.com", "3dnews.ru", "ixbt.com", "theverge.com", "arstechnica.com",
           "news.ycombinator.com", "anandtech.com", "4pda.to" },
}
local GADGET_SEARCHES = filter {
  type = "search",
  within_days = 30,
  query_contains = { "iphone", "pixel", "rtx", "видеокарт", "процессор", "ноутбук",
                     "обзор смартфон", "mechanical keyboard", "raspberry pi" },
}

return segment_script {
  name = "tech_enthusiast",
  version = "1.0.0",
  description = "Tech media habit or gadget research",
  segments = { "tech_enthusiast" },
  evaluate = function(user)
    local days = user:distinct("day", TECH_MEDIA)
    if days >= 5 then return { "tech_enthusiast" } end
    if days >= 1 and user:count(GADGET_SEARCHES) >= 3 then return { "tech_enthusiast" } end
    return {}
  end,
}
