import Testing

@testable import TollgateCore

/// The compact scope set answers membership exactly as the list it replaces, and never turns one
/// granted element into scopes it did not grant.
@Suite struct ScopeSetTests {
    @Test func membershipIsExactAndCaseSensitive() {
        let set = ScopeSet(["@team/orders.read", "openid", "@team/orders.read.all"])
        #expect(set.contains("@team/orders.read"))
        #expect(set.contains("openid"))
        #expect(set.contains("@team/orders.read.all"))
        #expect(!set.contains("@team/orders"), "a prefix is not a scope")
        #expect(!set.contains("orders.read"), "a suffix is not a scope")
        #expect(!set.contains("@team/Orders.read"))
        #expect(!set.contains(""))
        #expect(!set.contains("openid @team/orders.read"))
        #expect(Array(set) == ["@team/orders.read", "openid", "@team/orders.read.all"])
    }

    @Test func anElementWithASpaceIsDroppedNotSplitIntoScopes() {
        let set = ScopeSet(["@team/admin x", "openid", "", "openid"])
        #expect(!set.contains("@team/admin"))
        #expect(!set.contains("x"))
        #expect(Array(set) == ["openid"])
        #expect(ScopeRequirement(all: ["@team/admin"]).isSatisfied(by: set) == false)
    }

    @Test func requirementsAgreeWithTheListForm() {
        let scopes = ["@team/orders.read", "openid"]
        let requirements = [
            ScopeRequirement(all: ["@team/orders.read"]), ScopeRequirement(all: ["@team/orders.read", "x"]),
            ScopeRequirement(any: ["x", "openid"]), ScopeRequirement(any: ["x", "y"]),
            ScopeRequirement(all: ["openid"], any: ["@team/orders.read"]), ScopeRequirement(),
        ]
        for requirement in requirements {
            #expect(requirement.isSatisfied(by: ScopeSet(scopes)) == requirement.isSatisfied(by: scopes))
        }
    }
}
