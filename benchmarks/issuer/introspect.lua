-- RFC 7662 introspection of one opaque token by an authenticated client.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Authorization"] = "Basic " .. os.getenv("BASIC")
wrk.body = "token=" .. os.getenv("TOKEN")
local inactive = 0
function response(status, headers, body)
    if not string.find(body, '"active":true', 1, true) then inactive = inactive + 1 end
end
